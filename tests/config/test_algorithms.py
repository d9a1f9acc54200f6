"""Sampler and pruner settings: parsed against their tables, hpo's own options kept away from the Optuna classes."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hpo.config.algorithms import (
    DEFAULT_SAMPLER,
    MIN_MAX_HISTORY,
    SAMPLERS,
    AlgorithmSettings,
    build_sampler,
    parse_algorithm,
)
from hpo.config.experiment import load_experiment
from hpo.errors import ConfigError
from tests.conftest import tiny_space


def _parse(raw: object) -> AlgorithmSettings:
    return parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER)


@pytest.mark.parametrize("value", [MIN_MAX_HISTORY, 5000, None])
def test_tpe_takes_max_history(value: int | None) -> None:
    settings = _parse({"name": "tpe", "seed": 2, "max_history": value})
    assert settings.options == {"seed": 2, "max_history": value}
    sampler = build_sampler(settings)  # the Optuna class never sees hpo's own option
    assert type(sampler) is optuna.samplers.TPESampler


def test_the_default_sampler_leaves_max_history_to_the_study() -> None:
    assert "max_history" not in _parse(None).options  # hpo.study.samplers applies its default


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"name": "tpe", "max_history": MIN_MAX_HISTORY - 1},
            "study.sampler.max_history: must be at least 225 (TPE takes its 25 best trials out of at least 250), or "
            "null for the whole history, got 224",
        ),
        ({"name": "tpe", "max_history": 0}, "study.sampler.max_history: must be at least 225"),
        ({"name": "tpe", "max_history": "all"}, "study.sampler.max_history: must be an integer >= 225, or null"),
        ({"name": "tpe", "max_history": True}, "study.sampler.max_history: must be an integer >= 225"),
        ({"name": "tpe", "max_history": 500.0}, "study.sampler.max_history: must be an integer >= 225"),
        ({"name": "random", "max_history": 500}, "study.sampler.max_history: unknown option for 'random'"),
    ],
)
def test_bad_max_history_is_refused(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(raw)
    assert expected in str(info.value)


def test_a_file_with_max_history_names_the_file(write_space) -> None:
    path = write_space(tiny_space(study={"sampler": {"name": "tpe", "max_history": 10}}))
    with pytest.raises(ConfigError, match=r"space\.yaml.*study\.sampler\.max_history: must be at least 225"):
        load_experiment(path)
    ok = load_experiment(write_space(tiny_space(study={"sampler": {"name": "tpe", "max_history": 400}})))
    assert ok.study.sampler.options["max_history"] == 400
