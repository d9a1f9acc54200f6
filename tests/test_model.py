from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.model import MLP


def test_bce_with_logits_equals_sigmoid_then_bce() -> None:
    gen = torch.Generator().manual_seed(0)
    # float32 for typical logits, float64 for wide ones (where float32's sigmoid rounds away the difference)
    for dtype, scale in [(torch.float32, 1.0)] * 5 + [(torch.float64, 8.0)] * 5:
        logits = (torch.randn(257, generator=gen, dtype=torch.float64) * scale).to(dtype)
        targets = torch.randint(0, 2, (257,), generator=gen).to(dtype)
        with_logits = nn.BCEWithLogitsLoss()(logits, targets)
        plain = nn.BCELoss()(nn.Sigmoid()(logits), targets)
        assert torch.allclose(with_logits, plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_depth_width_and_output(n_layers: int) -> None:
    model = MLP(n_features=7, n_layers=n_layers, hidden_size=5, dropout=0.2, activation="tanh")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == n_layers + 1
    assert linears[-1].out_features == 1
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == n_layers
    model.eval()
    x = torch.randn(4, 7)
    probs = model.predict_proba(x)
    assert probs.shape == (4,)
    assert torch.allclose(probs, torch.sigmoid(model(x)))
    assert ((probs > 0) & (probs < 1)).all()


def test_state_dict_round_trip_with_plain_constructor() -> None:
    kwargs = {"n_features": 3, "n_layers": 2, "hidden_size": 4, "dropout": 0.0, "activation": "gelu"}
    a, b = MLP(**kwargs), MLP(**kwargs)
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 3)
    assert torch.equal(a(x), b(x))


def test_unknown_activation() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(n_features=2, activation="swish")
