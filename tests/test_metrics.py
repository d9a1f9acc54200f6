"""hpo.metrics: the validation metrics, checked against torchmetrics' own functions."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import binary_precision, binary_recall

from hpo.metrics import compute_metrics


def test_precision_and_recall_at_one_half() -> None:
    logits = torch.tensor([2.0, 1.0, -1.0, -2.0, 0.5, -0.5])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    metrics = compute_metrics(logits, targets)
    assert float(metrics["val/precision"]) == pytest.approx(2 / 3)  # predicted positive: 2.0, 1.0, 0.5; two of them are
    assert float(metrics["val/recall"]) == 0.5  # four positives, two found
    none_predicted = compute_metrics(torch.full((4,), -3.0), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert float(none_predicted["val/precision"]) == 0.0 and float(none_predicted["val/recall"]) == 0.0


def test_precision_and_recall_agree_with_torchmetrics() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = torch.randn(200, generator=generator)
        targets = (torch.rand(200, generator=generator) > 0.6).float()
        metrics = compute_metrics(logits, targets)
        probs, labels = torch.sigmoid(logits), targets.long()
        assert float(metrics["val/precision"]) == pytest.approx(float(binary_precision(probs, labels)))
        assert float(metrics["val/recall"]) == pytest.approx(float(binary_recall(probs, labels)))


def test_batched_metrics_equal_one_model_at_a_time() -> None:
    """compute_metrics_batched gives each row what compute_metrics gives it, ties (rounded logits, saturated
    probabilities, all equal) included."""
    import torch

    from hpo.metrics import compute_metrics, compute_metrics_batched

    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(5, 300, (1,), generator=generator))
        y = (torch.rand(n, generator=generator) > 0.6).float()
        y[0], y[1] = 1.0, 0.0
        logits = torch.randn(5, n, generator=generator) * float(torch.rand(1, generator=generator) * 30)
        logits[1] = torch.round(logits[1])
        logits[2] = logits[2] * 100
        logits[3] = 0.0
        batched = compute_metrics_batched(logits, y)
        for row, got in zip(logits, batched, strict=True):
            expected = {k: float(v) for k, v in compute_metrics(row, y).items()}
            assert got.keys() == expected.keys()
            for name, value in expected.items():
                assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
