"""Probability quality: Brier score, log loss, expected calibration error, reliability points, temperature scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "N_BINS",
    "ProbabilityQuality",
    "ReliabilityBin",
    "TemperatureFit",
    "fit_temperature",
    "log_loss_of_logits",
    "logits_to_probabilities",
    "probability_quality",
]

#: Equal-width bins of the expected calibration error and the reliability diagram.
N_BINS = 15
_LOG_SCALE_RANGE = (math.log(1e-3), math.log(1e3))  # 1/T searched between 0.001 and 1000


def logits_to_probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``sigmoid(logits / temperature)``: the one formula both validation and prediction use.

    It is computed in float64 so that probabilities near 0 or 1 keep the order of the logits (in float32 every logit
    above about 17 would become exactly 1.0, and a temperature below 1 would create ties that change AUROC).
    """
    logits = logits.double()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.sigmoid(logits)


def log_loss_of_logits(logits: np.ndarray, targets: np.ndarray, scale: float = 1.0) -> float:
    """Mean binary cross-entropy of ``sigmoid(scale * logits)``, computed stably in float64."""
    z = scale * np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    # -[y log s(z) + (1-y) log(1-s(z))] = softplus(z) - y z
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass(frozen=True)
class TemperatureFit:
    """The outcome of temperature scaling: ``temperature`` is 1.0 unless the fit lowered validation log loss."""

    temperature: float
    fitted_temperature: float
    log_loss_before: float
    log_loss_after: float

    @property
    def kept(self) -> bool:
        return self.temperature != 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "temperature": self.temperature,
            "fitted_temperature": self.fitted_temperature,
            "log_loss_before": self.log_loss_before,
            "log_loss_after": self.log_loss_after,
        }


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> TemperatureFit:
    """Fit one temperature ``T`` on validation logits by minimising log loss; keep it only if the loss goes down.

    The log loss of ``sigmoid(a * z)`` is convex in ``a = 1/T``, so a golden-section search over ``log a`` finds its
    minimum without gradients or randomness. ``T`` is kept only when the log loss of the probabilities the predictor
    will produce with it is strictly lower than without it.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    before = _predicted_log_loss(z, y, 1.0)
    low, high = _LOG_SCALE_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = log_loss_of_logits(z, y, math.exp(a)), log_loss_of_logits(z, y, math.exp(b))
    for _ in range(100):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = log_loss_of_logits(z, y, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = log_loss_of_logits(z, y, math.exp(b))
    temperature = 1.0 / math.exp((low + high) / 2)
    after = _predicted_log_loss(z, y, temperature)
    if not after < before:
        return TemperatureFit(1.0, temperature, before, after)
    return TemperatureFit(temperature, temperature, before, after)


def _predicted_log_loss(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = logits_to_probabilities(torch.from_numpy(z.astype(np.float32)), temperature).double().numpy()
    return _log_loss(p, y)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    eps = 1e-12
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class ReliabilityBin:
    """One point of the reliability diagram: a probability bin, its mean prediction and its share of positives."""

    low: float
    high: float
    count: int
    mean_probability: float
    fraction_positive: float


@dataclass(frozen=True)
class ProbabilityQuality:
    """How far the probabilities of a model can be trusted, measured on labelled rows."""

    n: int
    brier: float
    log_loss: float
    ece: float
    bins: tuple[ReliabilityBin, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "brier": self.brier,
            "log_loss": self.log_loss,
            "ece": self.ece,
            "n_bins": N_BINS,
            "reliability": [
                {
                    "low": b.low,
                    "high": b.high,
                    "count": b.count,
                    "mean_probability": b.mean_probability,
                    "fraction_positive": b.fraction_positive,
                }
                for b in self.bins
            ],
        }


def probability_quality(probabilities: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> ProbabilityQuality:
    """Brier score, log loss and expected calibration error (``n_bins`` equal-width bins) of 0/1 ``targets``.

    ECE is the count-weighted mean of ``|fraction positive - mean probability|`` over the non-empty bins; bin ``i``
    holds ``i/n_bins <= p < (i+1)/n_bins`` (the last one includes 1).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    bins = []
    ece = 0.0
    for i in range(n_bins):
        inside = index == i
        count = int(inside.sum())
        if count == 0:
            continue
        mean_p, frac = float(p[inside].mean()), float(y[inside].mean())
        ece += count / len(p) * abs(frac - mean_p)
        bins.append(ReliabilityBin(i / n_bins, (i + 1) / n_bins, count, mean_p, frac))
    return ProbabilityQuality(len(p), float(np.mean((p - y) ** 2)), _log_loss(p, y), ece, tuple(bins))
