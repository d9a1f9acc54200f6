"""The validation metrics a study can optimise, and how they are computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["METRICS", "compute_metrics", "hp_name"]

#: Metric name -> the direction in which it improves.
METRICS: dict[str, str] = {
    "val/auroc": "maximize",
    "val/loss": "minimize",
    "val/accuracy": "maximize",
    "val/f1": "maximize",
    "val/average_precision": "maximize",
}


def hp_name(metric: str) -> str:
    """The TensorBoard HParams name of a metric: ``val/auroc`` -> ``hp/auroc``."""
    return "hp/" + metric.split("/", 1)[-1]


def compute_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """All :data:`METRICS` for a validation set, as float32 scalar tensors.

    Args:
        logits: raw model outputs, shape ``(n,)``.
        targets: 0/1 labels, shape ``(n,)``, float.
    """
    # Imported here so that reading and validating a search-space file does not pay for torch and torchmetrics.
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torchmetrics.functional.classification import (
        binary_accuracy,
        binary_auroc,
        binary_average_precision,
        binary_f1_score,
    )

    logits = logits.detach().float()
    targets = targets.float()
    labels = targets.long()
    probs = torch.sigmoid(logits)
    return {
        "val/auroc": binary_auroc(probs, labels),
        "val/loss": F.binary_cross_entropy_with_logits(logits, targets),
        "val/accuracy": binary_accuracy(probs, labels),
        "val/f1": binary_f1_score(probs, labels),
        "val/average_precision": binary_average_precision(probs, labels),
    }
