from __future__ import annotations

import optuna
import pytest

from hpo.config.params_section import parse_search_space
from hpo.errors import ConfigError

RAW = {
    "momentum": {"type": "float", "low": 0.5, "high": 0.9, "condition": {"optimizer": ["sgd", "rmsprop"]}},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "hidden_size": {"type": "int", "low": 8, "high": 64, "step": 8},
    "activation": "relu",
}


def test_conditional_parameter_is_active_only_for_its_parent_values() -> None:
    space = parse_search_space(RAW, "f.yaml: params")
    adam = space.sample(optuna.trial.FixedTrial({"optimizer": "adam", "lr": 0.01, "hidden_size": 16}))
    assert "momentum" not in adam
    assert adam == {"optimizer": "adam", "lr": 0.01, "hidden_size": 16, "activation": "relu"}
    sgd = space.sample(optuna.trial.FixedTrial({"optimizer": "sgd", "lr": 0.01, "hidden_size": 16, "momentum": 0.7}))
    assert sgd["momentum"] == 0.7


def test_sampled_values_respect_ranges_in_a_real_study() -> None:
    space = parse_search_space(RAW, "f.yaml: params")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = space.sample(trial)
        assert 1e-4 <= params["lr"] <= 1e-1
        assert params["hidden_size"] % 8 == 0 and 8 <= params["hidden_size"] <= 64
        assert ("momentum" in params) == (params["optimizer"] in ("sgd", "rmsprop"))
        assert "activation" not in trial.params  # fixed values are not Optuna parameters
        seen.add(params["optimizer"])
        study.tell(trial, 0.0)
    assert seen == {"adam", "sgd", "rmsprop"}


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml: params: must be a mapping"):
        parse_search_space(["lr"], "f.yaml: params")
