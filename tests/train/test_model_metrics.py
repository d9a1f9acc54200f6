from __future__ import annotations

import math

from hpo.model import MLP
from hpo.train.model_metrics import count_parameters, latency_ms, measure_model


def test_parameter_count_is_every_trainable_weight_and_bias() -> None:
    logistic = MLP(n_features=30, n_layers=0, hidden_size=8, dropout=0.0, activation="relu")
    assert count_parameters(logistic) == 31
    deep = MLP(n_features=30, n_layers=2, hidden_size=16, dropout=0.1, activation="relu")
    assert count_parameters(deep) == (30 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    for p in deep.parameters():
        p.requires_grad_(False)
        break
    assert count_parameters(deep) == (30 * 16 + 16) + (16 * 16 + 16) + (16 + 1) - 30 * 16


def test_latency_is_a_positive_time_and_leaves_the_model_mode_alone() -> None:
    model = MLP(n_features=30, n_layers=1, hidden_size=8, dropout=0.5, activation="relu")
    model.train()
    value = latency_ms(model, 30, rows=64, repeats=3)
    assert math.isfinite(value) and value > 0
    assert model.training
    measured = measure_model(model, 30, ["model/params", "val/auroc"])
    assert measured == {"model/params": float(30 * 8 + 8 + 8 + 1)}  # only what was asked for, latency not measured
