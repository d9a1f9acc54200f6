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


def test_batched_metrics_agree_with_torchmetrics() -> None:
    """compute_metrics_batched gives each row what torchmetrics' own functions give it, ties (rounded logits,
    saturated probabilities, all equal) included; compute_metrics is the same for one row."""
    import torch.nn.functional as F  # noqa: N812
    from torchmetrics.functional.classification import (
        binary_accuracy,
        binary_auroc,
        binary_average_precision,
        binary_f1_score,
    )

    from hpo.metrics import compute_metrics_batched

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
            probs, labels = torch.sigmoid(row), y.long()
            expected = {
                "val/auroc": binary_auroc(probs, labels),
                "val/loss": F.binary_cross_entropy_with_logits(row, y),
                "val/accuracy": binary_accuracy(probs, labels),
                "val/f1": binary_f1_score(probs, labels),
                "val/average_precision": binary_average_precision(probs, labels),
                # cut at >= 0.5 (torchmetrics' precision and recall cut at > 0.5: the row of zeros differs)
                "val/precision": ((probs >= 0.5) & (y == 1)).sum() / (probs >= 0.5).sum().clamp(min=1),
                "val/recall": ((probs >= 0.5) & (y == 1)).sum() / (y == 1).sum().clamp(min=1),
            }
            assert got.keys() == expected.keys()
            for name, value in expected.items():
                assert got[name] == pytest.approx(float(value), rel=1e-6, abs=1e-6), name
            assert compute_metrics(row, y) == got


def test_equal_aurocs_are_equal_values() -> None:
    """Two models that order the validation rows differently but with the same AUROC get the same value (so a tie
    keeps the earlier trial); torchmetrics' float32 ROC area puts these two an ulp apart."""
    from torchmetrics.functional.classification import binary_auroc

    generator = torch.Generator().manual_seed(0)
    y = (torch.rand(200, generator=generator) > 0.5).float()
    first: dict[int, torch.Tensor] = {}
    for _ in range(3000):
        logits = torch.randn(200, generator=generator)
        scores = torch.sigmoid(logits)
        count = int((scores[y == 1][:, None] > scores[y == 0][None, :]).sum())  # pairs ordered right: the AUROC
        earlier = first.setdefault(count, logits)
        if earlier is not logits and float(binary_auroc(torch.sigmoid(earlier), y.long())) != float(
            binary_auroc(scores, y.long())
        ):
            break
    else:
        pytest.fail("no pair of equal AUROCs that torchmetrics tells apart: the check below would prove nothing")
    exact = count / (int(y.sum()) * int((1 - y).sum()))
    assert compute_metrics(earlier, y)["val/auroc"] == compute_metrics(logits, y)["val/auroc"] == pytest.approx(exact)
