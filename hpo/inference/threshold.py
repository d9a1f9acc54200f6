"""The decision threshold: chosen on the validation split by the rule of the search-space file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo.config.inference_section import ThresholdRule

__all__ = ["DEFAULT_THRESHOLD", "MARGIN", "ThresholdChoice", "choose_threshold", "rates_at"]

DEFAULT_THRESHOLD = 0.5
#: How far below the validation probability it is chosen at a threshold is put (see :func:`choose_threshold`).
MARGIN = 1e-6


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold (a row is positive when its probability is >= it) and how it does on the validation split.

    ``reached`` is False when a ``min_recall``/``min_precision`` target cannot be met on the validation split; the
    threshold is then the one that comes closest.
    """

    threshold: float
    rule: str
    target: float | None
    reached: bool
    precision: float
    recall: float
    f1: float
    false_positive_rate: float

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.threshold,
            "rule": self.rule,
            "target": self.target,
            "reached": self.reached,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "false_positive_rate": self.false_positive_rate,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ThresholdChoice:
        return cls(
            float(raw["value"]),
            str(raw["rule"]),
            None if raw.get("target") is None else float(raw["target"]),
            bool(raw.get("reached", True)),
            float(raw["precision"]),
            float(raw["recall"]),
            float(raw["f1"]),
            float(raw["false_positive_rate"]),
        )


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(a), dtype=np.float64), where=b > 0)


def _curves(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (distinct probabilities, descending) with precision, recall, F1 and FPR at each."""
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # the last row of each run of equal probabilities
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    positives, negatives = y.sum(), len(y) - y.sum()
    precision = _divide(tp, tp + fp)
    recall = tp / positives if positives else np.zeros(len(tp))
    fpr = fp / negatives if negatives else np.zeros(len(fp))
    f1 = _divide(2 * precision * recall, precision + recall)
    return p[last], precision, recall, f1, fpr


def rates_at(probabilities: np.ndarray, targets: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and false-positive rate when rows with probability >= ``threshold`` are positive."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    predicted = p >= threshold
    tp = float((predicted & (y == 1)).sum())
    fp = float((predicted & (y == 0)).sum())
    positives, negatives = float((y == 1).sum()), float((y == 0).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, fp / negatives if negatives else 0.0


def choose_threshold(probabilities: np.ndarray, targets: np.ndarray, rule: ThresholdRule) -> ThresholdChoice:
    """Apply ``rule`` to validation probabilities and 0/1 targets.

    Candidate thresholds are the distinct validation probabilities; where several do equally well the highest one
    is taken (the fewest positives). The threshold returned is :data:`MARGIN` below that probability (or half way to
    the next lower one, when that is closer), so that the rows at it are positive however their probability is
    computed, and the validation rates are those at the candidate.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    reached = True
    if rule.name == "fixed":
        threshold = float(rule.target if rule.target is not None else DEFAULT_THRESHOLD)
    else:
        thresholds, precision, recall, f1, fpr = _curves(p, y)
        if rule.name == "max_f1":
            index = int(np.argmax(f1))
        elif rule.name == "youden":
            index = int(np.argmax(recall - fpr))
        elif rule.name == "min_recall":
            ok = np.flatnonzero(recall >= (rule.target or 0.0))
            reached = len(ok) > 0
            index = int(ok[0]) if reached else len(thresholds) - 1
        elif rule.name == "min_precision":
            ok = np.flatnonzero(precision >= (rule.target or 0.0))
            reached = len(ok) > 0
            index = int(ok[-1]) if reached else int(np.argmax(precision))
        else:
            raise ValueError(f"unknown threshold rule {rule.name!r}")
        chosen = float(thresholds[index])
        below = float(thresholds[index + 1]) if index + 1 < len(thresholds) else 0.0
        # Just below the chosen probability (by MARGIN, or half way to the next lower one): the validation row that
        # sits at it is positive whether its probability is computed in float64 (hpo predict) or in float32 (plain
        # PyTorch, ONNX), which differ by about 1e-7.
        threshold = chosen - min(MARGIN, (chosen - below) / 2)
    precision_at, recall_at, f1_at, fpr_at = rates_at(p, y, threshold)
    return ThresholdChoice(threshold, rule.name, rule.target, reached, precision_at, recall_at, f1_at, fpr_at)
