from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss

from hpo.inference.calibration import (
    N_BINS,
    fit_temperature,
    log_loss_of_logits,
    logits_to_probabilities,
    probability_quality,
)


def _sample(n: int, seed: int, sharpen: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose sigmoid is the true probability, multiplied by ``sharpen`` (> 1: over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)
    return sharpen * z, y


def test_metrics_agree_with_scikit_learn() -> None:
    logits, y = _sample(500, 0, 1.0)
    p = logits_to_probabilities(torch.from_numpy(logits.astype(np.float32))).double().numpy()
    quality = probability_quality(p, y)
    assert quality.n == 500
    assert quality.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert quality.log_loss == pytest.approx(log_loss(y, p), abs=1e-9)
    assert quality.log_loss == pytest.approx(log_loss_of_logits(logits, y), abs=1e-5)
    assert sum(b.count for b in quality.bins) == 500
    assert all(0 <= b.low < b.high <= 1 and b.low <= b.mean_probability <= b.high for b in quality.bins)


def test_expected_calibration_error_by_hand() -> None:
    # bin [0, 1/15): p = 0, 0.05: mean 0.025, half positive -> |0.5 - 0.025| weighted 2/4
    # bin [14/15, 1]: p = 0.95, 1.0 (1.0 falls in the last bin): mean 0.975, all positive -> |1 - 0.975| weighted 2/4
    quality = probability_quality(np.array([0.0, 0.05, 0.95, 1.0]), np.array([0, 1, 1, 1]))
    assert [b.count for b in quality.bins] == [2, 2]
    assert quality.bins[-1].high == 1.0 and quality.bins[0].high == pytest.approx(1 / N_BINS)
    assert quality.ece == pytest.approx(0.5 * 0.475 + 0.5 * 0.025)


def test_temperature_scaling_repairs_an_over_confident_model() -> None:
    logits, y = _sample(2000, 1, sharpen=5.0)
    fit = fit_temperature(logits, y)
    assert fit.kept
    assert fit.temperature == pytest.approx(5.0, rel=0.15)
    assert fit.log_loss_after < fit.log_loss_before - 0.1


@pytest.mark.parametrize("seed", range(20))
def test_temperature_scaling_never_raises_validation_log_loss(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits, y = _sample(int(rng.integers(5, 300)), seed, sharpen=float(rng.choice([0.2, 1.0, 1.0, 3.0, 50.0])))
    fit = fit_temperature(logits, y)
    tensor = torch.from_numpy(logits.astype(np.float32))
    before = log_loss(y, logits_to_probabilities(tensor).double().numpy().clip(1e-12, 1 - 1e-12), labels=[0, 1])
    after = log_loss(
        y, logits_to_probabilities(tensor, fit.temperature).double().numpy().clip(1e-12, 1 - 1e-12), labels=[0, 1]
    )
    assert after <= before + 1e-12
    assert fit.kept == (fit.temperature != 1.0)


def test_constant_logits_keep_no_temperature() -> None:
    fit = fit_temperature(np.zeros(10), np.array([0, 1] * 5))
    assert not fit.kept and fit.temperature == 1.0
