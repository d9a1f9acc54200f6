from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_curve, precision_score, recall_score, roc_curve

from hpo.config.inference_section import ThresholdRule
from hpo.inference.threshold import ThresholdChoice, choose_threshold


def _scores(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.float64)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.18), 0, 1).round(3)  # rounded: ties between rows
    return p, y


def test_fixed_threshold_and_its_rates() -> None:
    p, y = _scores()
    choice = choose_threshold(p, y, ThresholdRule("fixed", 0.5))
    assert choice.threshold == 0.5 and choice.reached
    predicted = p >= 0.5
    assert choice.precision == pytest.approx(precision_score(y, predicted))
    assert choice.recall == pytest.approx(recall_score(y, predicted))
    assert choice.f1 == pytest.approx(f1_score(y, predicted))


def test_max_f1_is_the_best_f1_over_all_thresholds() -> None:
    p, y = _scores(1)
    choice = choose_threshold(p, y, ThresholdRule("max_f1", None))
    precision, recall, _ = precision_recall_curve(y, p)
    best = np.max(
        np.divide(
            2 * precision * recall, precision + recall, where=precision + recall > 0, out=np.zeros_like(precision)
        )
    )
    assert choice.f1 == pytest.approx(best)
    assert choice.f1 == pytest.approx(f1_score(y, p >= choice.threshold))


def test_youden_maximises_tpr_minus_fpr() -> None:
    p, y = _scores(2)
    choice = choose_threshold(p, y, ThresholdRule("youden", None))
    fpr, tpr, _ = roc_curve(y, p)
    assert choice.recall - choice.false_positive_rate == pytest.approx(np.max(tpr - fpr))


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_min_recall_is_the_highest_threshold_reaching_the_target(target: float) -> None:
    p, y = _scores(3)
    choice = choose_threshold(p, y, ThresholdRule("min_recall", target))
    assert choice.reached and choice.recall >= target
    lowest_positive = p[p >= choice.threshold].min()
    assert choice.threshold == pytest.approx(lowest_positive, abs=2e-6)  # just below a validation probability
    higher = np.unique(p[p > lowest_positive])
    assert all(recall_score(y, p >= t) < target for t in higher)


@pytest.mark.parametrize("target", [0.6, 0.8, 0.9])
def test_min_precision_is_the_lowest_threshold_reaching_the_target(target: float) -> None:
    p, y = _scores(4)
    choice = choose_threshold(p, y, ThresholdRule("min_precision", target))
    assert choice.reached and choice.precision >= target
    lower = np.unique(p[p < choice.threshold])
    assert all(precision_score(y, p >= t, zero_division=0) < target for t in lower)


def test_unreachable_precision_is_reported_not_hidden() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    choice = choose_threshold(p, y, ThresholdRule("min_precision", 0.99))
    assert not choice.reached
    assert choice.precision == pytest.approx(0.5)
    assert ThresholdChoice.from_json(choice.to_json()) == choice


@pytest.mark.parametrize(
    "rule",
    [
        ThresholdRule("max_f1", None),
        ThresholdRule("youden", None),
        ThresholdRule("min_recall", 0.9),
        ThresholdRule("min_precision", 0.8),
    ],
    ids=lambda rule: rule.name,
)
def test_rows_at_the_threshold_get_the_same_label_in_float32(rule: ThresholdRule) -> None:
    """The threshold sits at a validation row's probability: computed in float32 (plain PyTorch, ONNX) that row's
    probability may round below its float64 value (hpo predict). Every validation row gets the same label both ways,
    and its rates are those of the rows at or above the chosen probability."""
    rng = np.random.default_rng(0)
    for _ in range(10):
        y = (rng.random(400) < 0.4).astype(np.float64)
        logits = rng.normal(-0.5 + 1.5 * y, 1.0).astype(np.float32)
        p64 = 1.0 / (1.0 + np.exp(-logits.astype(np.float64) / 1.3))  # a temperature, as hpo predict applies it
        p32 = (1.0 / (1.0 + np.exp(-logits / np.float32(1.3)))).astype(np.float32)
        choice = choose_threshold(p64, y, rule)
        assert np.array_equal(p32 >= choice.threshold, p64 >= choice.threshold)
        at = p64[p64 >= choice.threshold].min()
        assert (choice.precision, choice.recall) == (
            pytest.approx(precision_score(y, p64 >= at)),
            pytest.approx(recall_score(y, p64 >= at)),
        )
