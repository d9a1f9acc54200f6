"""The validation metrics a study can optimise, and how they are computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["ALL_METRICS", "METRICS", "MODEL_METRICS", "compute_metrics", "compute_metrics_batched", "hp_name"]

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


def compute_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """All :data:`METRICS` for a validation set: :func:`compute_metrics_batched` for one model.

    AUROC is computed exactly (in float64, from the ranks), so two models whose AUROCs are equal get equal values,
    and a tie keeps the earlier trial as the best; torchmetrics' float32 ROC area can put them an ulp apart.

    Args:
        logits: raw model outputs, shape ``(n,)``.
        targets: 0/1 labels, shape ``(n,)``, float.
    """
    return compute_metrics_batched(logits.reshape(1, -1), targets)[0]


def compute_metrics_batched(logits: torch.Tensor, targets: torch.Tensor) -> list[dict[str, float]]:
    """Every :data:`METRICS` value for many models at once: ``logits`` of shape ``(P, n)`` (one row per model) on the
    same targets ``(n,)``; one dict of floats per row, equal to torchmetrics' binary AUROC, average precision,
    accuracy and F1 (to float32 rounding), binary cross-entropy, and precision and recall at 0.5 (with no predicted or
    actual positives: 0, as torchmetrics gives).

    A population (:mod:`hpo.train.population`) measures every member after every epoch: a handful of tensor operations
    for all of them instead of five torchmetrics calls each. AUROC is the Mann-Whitney statistic with average ranks
    (ties count half: the trapezoidal ROC area torchmetrics computes); average precision sums, over the distinct
    probabilities from the highest down, the recall gained times the precision there (torchmetrics' step rule).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    logits = logits.detach().double()
    p, n = logits.shape
    y = targets.double().expand(p, n)
    positive = y > 0.5
    n_pos = positive.sum(dim=1).double()
    n_neg = n - n_pos
    # the float32 probabilities torchmetrics sees, row by row: a vectorised sigmoid may round a value 1 ulp apart
    # depending on its place in the tensor, which would split or join ties
    probs = torch.stack([torch.sigmoid(row) for row in logits.float()]).double()
    loss = F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="none").double().mean(dim=1)
    above = probs > 0.5  # torchmetrics' accuracy and F1 cut at > 0.5; precision and recall at >= 0.5
    accuracy = (above == positive).double().mean(dim=1)
    tp_above = (above & positive).sum(dim=1).double()
    f1_den = 2 * tp_above + (above & ~positive).sum(dim=1) + (~above & positive).sum(dim=1)
    f1 = torch.where(f1_den > 0, 2 * tp_above / f1_den.clamp(min=1), torch.zeros_like(f1_den))
    at_least = probs >= 0.5
    tp = (at_least & positive).sum(dim=1).double()
    precision = tp / at_least.sum(dim=1).double().clamp(min=1.0)
    recall = tp / n_pos.clamp(min=1.0)

    # tie blocks of equal probabilities, in descending order, per row
    values, order = torch.sort(probs, dim=1, descending=True)
    sorted_pos = positive.gather(1, order).double()
    new_block = torch.ones_like(values, dtype=torch.bool)
    new_block[:, 1:] = values[:, 1:] != values[:, :-1]
    block = torch.cumsum(new_block.long(), dim=1) - 1  # block index within the row
    flat = block + torch.arange(p, device=block.device).unsqueeze(1) * n
    position = torch.arange(n, device=block.device, dtype=torch.double).expand(p, n)
    first = torch.full((p * n,), float(n), dtype=torch.double, device=block.device)
    first = first.scatter_reduce(0, flat.flatten(), position.flatten(), reduce="amin")
    last = torch.full((p * n,), -1.0, dtype=torch.double, device=block.device)
    last = last.scatter_reduce(0, flat.flatten(), position.flatten(), reduce="amax")
    # ascending average rank (1-based) of each sorted element: n - mean descending position
    rank = n - (first[flat] + last[flat]) / 2
    auroc = ((rank * sorted_pos).sum(dim=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg).clamp(min=1.0)
    # average precision: at each block's last element the threshold takes the whole block in
    tp_cum = torch.cumsum(sorted_pos, dim=1)
    block_end = torch.ones_like(new_block)
    block_end[:, :-1] = new_block[:, 1:]
    pos_in_block = torch.zeros(p * n, dtype=torch.double, device=block.device)
    pos_in_block = pos_in_block.scatter_add(0, flat.flatten(), sorted_pos.flatten())[flat]
    precision_at = tp_cum / (position + 1)
    average_precision = (block_end * pos_in_block * precision_at).sum(dim=1) / n_pos.clamp(min=1.0)
    columns = {
        "val/auroc": auroc,
        "val/loss": loss,
        "val/accuracy": accuracy,
        "val/f1": f1,
        "val/average_precision": average_precision,
        "val/precision": precision,
        "val/recall": recall,
    }
    rows = torch.stack(list(columns.values()), dim=1).tolist()
    return [dict(zip(columns, row, strict=True)) for row in rows]
