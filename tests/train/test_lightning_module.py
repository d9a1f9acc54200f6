from __future__ import annotations

import pytest
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from hpo.model import MLP
from hpo.train.lightning_module import BinaryClassifier, fused_adam_applies


@pytest.mark.parametrize(("name", "fused"), [("adam", True), ("adamw", True), ("sgd", None), ("rmsprop", None)])
def test_adam_and_adamw_run_fused_on_the_cpu(name: str, fused: bool | None) -> None:
    module = BinaryClassifier(MLP(4, 2, 8, 0.0), optimizer=name)
    assert module.configure_optimizers().defaults.get("fused") is fused


def test_fused_only_for_float_weights_on_cpu_or_cuda() -> None:
    assert fused_adam_applies([torch.zeros(2)])
    assert not fused_adam_applies([])
    assert not fused_adam_applies([torch.zeros(2, dtype=torch.bfloat16)])
    assert not fused_adam_applies([torch.zeros(2, device="meta")])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_training_is_torchs_default_arithmetic(name: str) -> None:
    """200 steps with the fused optimizer end on the weights of torch's default (for-loop) implementation, to float
    rounding: the fused kernel changes the speed, not the training."""
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] + x[:, 1] > 0).float()
    weights = []
    for fused in (True, False):
        torch.manual_seed(3)
        model = MLP(4, 2, 16, 0.0)
        module = BinaryClassifier(model, optimizer=name, lr=1e-2, weight_decay=0.01)
        optimizer = module.configure_optimizers()
        if not fused:
            cls = type(optimizer)
            optimizer = cls(model.parameters(), lr=1e-2, weight_decay=0.01)
        assert optimizer.defaults.get("fused") is (True if fused else None)
        for step in range(200):
            rows = slice((step * 32) % 256, (step * 32) % 256 + 32)
            loss = binary_cross_entropy_with_logits(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weights.append([p.detach().clone() for p in model.parameters()])
    diff = max((a - b).abs().max().item() for a, b in zip(*weights, strict=True))
    assert diff < 1e-4
    assert max(p.abs().max().item() for p in weights[0]) > 0.1  # it did train
