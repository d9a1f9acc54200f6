"""hpo.evaluation.scores: the rank AUROC agrees with scikit-learn, the bootstrap interval is reproducible and sane."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from hpo.evaluation.scores import auroc, score_probabilities


def test_auroc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500).round(1)  # many ties
    y = (rng.random(500) < p).astype(float)
    assert auroc(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(auroc(p, np.ones_like(y)))


def test_scores_and_a_reproducible_interval_around_the_auroc() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(float)
    scores = score_probabilities(p, y, 0.5)
    assert scores.auroc_low < scores.auroc < scores.auroc_high
    assert 0.05 < scores.auroc_high - scores.auroc_low < 0.2
    assert score_probabilities(p, y, 0.5) == scores  # seeded bootstrap
    assert scores.log_loss == pytest.approx(log_loss(y, p), rel=1e-9)
    assert scores.brier == pytest.approx(brier_score_loss(y, p), rel=1e-9)
    predicted = p >= 0.5
    assert scores.accuracy == pytest.approx((predicted == (y == 1)).mean())
    assert scores.precision == pytest.approx((predicted & (y == 1)).sum() / predicted.sum())
    assert scores.recall == pytest.approx((predicted & (y == 1)).sum() / (y == 1).sum())
    assert (scores.n, scores.n_positive + scores.n_negative) == (400, 400)
    assert scores.to_json()["auroc"] == scores.auroc
