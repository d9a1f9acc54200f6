"""The validation metrics a study can optimise, and how they are computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["ALL_METRICS", "METRICS", "MODEL_METRICS", "compute_metrics", "hp_name"]

#: Validation metric name -> the direction in which it improves (measured every epoch; accuracy, F1, precision and
#: recall cut the probabilities at 0.5).
METRICS: dict[str, str] = {
    "val/auroc": "maximize",
    "val/loss": "minimize",
    "val/accuracy": "maximize",
    "val/f1": "maximize",
    "val/average_precision": "maximize",
    "val/precision": "maximize",
    "val/recall": "maximize",
}

#: Metrics of the trained network itself, measured once per trial after training (see :mod:`hpo.train.model_metrics`):
#: trainable parameters, and the median forward time in milliseconds of a fixed batch on one CPU thread.
MODEL_METRICS: dict[str, str] = {
    "model/params": "minimize",
    "model/latency_ms": "minimize",
}

#: Every metric a study may optimise or constrain.
ALL_METRICS: dict[str, str] = {**METRICS, **MODEL_METRICS}


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
    # Precision and recall from the confusion counts directly: a torchmetrics call per metric costs more per epoch.
    predicted = probs >= 0.5
    positive = labels == 1
    true_positives = (predicted & positive).sum().float()
    return {
        "val/auroc": binary_auroc(probs, labels),
        "val/loss": F.binary_cross_entropy_with_logits(logits, targets),
        "val/accuracy": binary_accuracy(probs, labels),
        "val/f1": binary_f1_score(probs, labels),
        "val/average_precision": binary_average_precision(probs, labels),
        # clamp: no predicted (or actual) positives gives 0 / 1 = 0, as torchmetrics does, instead of NaN
        "val/precision": true_positives / predicted.sum().float().clamp(min=1.0),
        "val/recall": true_positives / positive.sum().float().clamp(min=1.0),
    }
