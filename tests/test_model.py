from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.model import MLP, EmbeddedInputs, PeriodicEmbeddings


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


def _periodic(**overrides: object) -> MLP:
    kwargs: dict = {
        "n_features": 6,
        "n_layers": 2,
        "hidden_size": 8,
        "embedding": "periodic",
        "embedded_inputs": [0, 3, 4],
        "embedding_dim": 5,
        "n_frequencies": 4,
        "frequency_sigma": 0.5,
    }
    return MLP(**{**kwargs, **overrides})


def test_periodic_embeddings_shapes_and_first_layer_width() -> None:
    embed = PeriodicEmbeddings(3, embedding_dim=5, n_frequencies=4, frequency_sigma=0.5)
    assert embed(torch.randn(7, 3)).shape == (7, 3, 5)
    assert embed.frequencies.shape == (3, 4) and embed.weight.shape == (3, 8, 5) and embed.bias.shape == (3, 5)
    assert embed.frequencies.abs().max() <= 3 * 0.5  # truncated normal initialisation
    model = _periodic()
    assert isinstance(model.net[0], EmbeddedInputs)
    first = model.net[1]
    assert isinstance(first, nn.Linear) and first.in_features == 3 * 5 + 3  # 3 embedded inputs, 3 passed through
    assert model(torch.randn(9, 6)).shape == (9,)


def test_periodic_embedding_matches_its_formula() -> None:
    embed = PeriodicEmbeddings(2, embedding_dim=3, n_frequencies=2, frequency_sigma=1.0)
    x = torch.randn(4, 2)
    out = embed(x)
    for j in range(2):
        angles = 2 * torch.pi * x[:, j : j + 1] * embed.frequencies[j]
        features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
        expected = torch.relu(features @ embed.weight[j] + embed.bias[j])
        assert torch.allclose(out[:, j], expected, atol=1e-6)


def test_only_the_listed_inputs_are_embedded() -> None:
    model = _periodic().eval()
    x = torch.randn(5, 6)
    embed = model.net[0]
    assert isinstance(embed, EmbeddedInputs)
    out = embed(x)
    # the inputs that are not listed reach the first linear layer unchanged, in their order, after the embeddings
    assert torch.equal(out[:, 15:], x[:, [1, 2, 5]])
    # changing an input that is not embedded changes only its own column; an embedded one changes only its block
    moved = x.clone()
    moved[:, 2] += 1.0
    changed = (embed(moved) != out).any(dim=0)
    assert changed.nonzero().flatten().tolist() == [16]
    moved = x.clone()
    moved[:, 3] += 1.0
    changed = (embed(moved) != out).any(dim=0).nonzero().flatten().tolist()
    assert changed and set(changed) <= set(range(5, 10))  # input 3 is the second embedded: columns 5..9


def test_embedding_state_dict_round_trip_with_plain_constructor() -> None:
    a, b = _periodic(), _periodic()
    assert "net.0.periodic.frequencies" in a.state_dict()
    assert not any("embedded" in key or "passed" in key for key in a.state_dict())  # the indices are kwargs
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 6)
    assert torch.equal(a.eval()(x), b.eval()(x))
    with pytest.raises(RuntimeError):
        _periodic(embedding_dim=6).load_state_dict(a.state_dict())


def test_without_embedding_the_architecture_is_unchanged() -> None:
    plain = MLP(n_features=6, n_layers=2, hidden_size=8)
    assert [key.split(".")[1] for key in plain.state_dict()] == ["0", "0", "2", "2", "4", "4"]
    # periodic with no numeric inputs to embed (a table of categorical columns) is the plain MLP
    assert list(_periodic(embedded_inputs=[]).state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embedding": "spline"}, "embedding must be one of"),
        ({"embedded_inputs": [0, 6]}, "embedded_inputs must be indices of the 6 inputs"),
        ({"embedded_inputs": [1, 1]}, "embedded_inputs must list distinct indices"),
        ({"embedding_dim": 0}, "embedding_dim must be at least 1"),
        ({"frequency_sigma": 0.0}, "frequency_sigma must be > 0"),
    ],
)
def test_bad_embedding_arguments(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _periodic(**overrides)
