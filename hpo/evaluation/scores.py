"""Test-split scores of a model's probabilities: AUROC with a bootstrap 95% interval, log loss, Brier score, and
accuracy, precision and recall at the saved threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["BOOTSTRAP_RESAMPLES", "TestScores", "auroc", "score_probabilities"]

#: Resamples of the bootstrap interval of the AUROC (seeded, so the interval is reproducible).
BOOTSTRAP_RESAMPLES = 1000
_EPS = 1e-15


def auroc(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The area under the ROC curve (ties count half), from ranks: the Mann-Whitney U statistic."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets) == 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    # average ranks of ties
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class TestScores:
    """A model's scores on the test split (``n`` rows), measured once after the search."""

    n: int
    n_positive: int
    n_negative: int
    auroc: float
    auroc_low: float  # 2.5th percentile of the bootstrap
    auroc_high: float  # 97.5th percentile of the bootstrap
    log_loss: float
    brier: float
    threshold: float
    accuracy: float
    precision: float
    recall: float

    def to_json(self) -> dict[str, Any]:
        return {key: (None if isinstance(v, float) and not np.isfinite(v) else v) for key, v in asdict(self).items()}


def _bootstrap_auroc(p: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(p), len(p))
        value = auroc(p[pick], y[pick])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def score_probabilities(
    probabilities: np.ndarray, targets: np.ndarray, threshold: float, *, resamples: int = BOOTSTRAP_RESAMPLES
) -> TestScores:
    """Score probabilities of the positive class against 0/1 targets (a row is positive when ``p >= threshold``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    clipped = np.clip(p, _EPS, 1 - _EPS)
    predicted = p >= threshold
    positive = y == 1
    true_positives = int((predicted & positive).sum())
    low, high = _bootstrap_auroc(p, y, resamples, seed=0)
    return TestScores(
        n=len(p),
        n_positive=int(positive.sum()),
        n_negative=int((~positive).sum()),
        auroc=auroc(p, y),
        auroc_low=low,
        auroc_high=high,
        log_loss=float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))) if len(p) else float("nan"),
        brier=float(np.mean((p - y) ** 2)) if len(p) else float("nan"),
        threshold=float(threshold),
        accuracy=float((predicted == positive).mean()) if len(p) else float("nan"),
        precision=true_positives / int(predicted.sum()) if predicted.any() else float("nan"),
        recall=true_positives / int(positive.sum()) if positive.any() else float("nan"),
    )
