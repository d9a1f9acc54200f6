"""Warm start into a space with `step` grids and a budget: a value off the grid is left out with a note (Optuna would
warn and train it anyway), and no more configurations are queued than `n_trials` can run."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.config.experiment import load_experiment
from hpo.search.warm_start import WarmStart, enqueue_configurations
from tests.conftest import tiny_space


def _space(write_space) -> Any:
    doc = tiny_space()
    doc["params"] |= {
        "hidden_size": {"type": "int", "low": 8, "high": 296, "step": 8},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    }
    return load_experiment(write_space(doc)).space


def test_values_off_the_step_grid_are_left_out_with_a_note(write_space) -> None:
    space = _space(write_space)
    study = optuna.create_study(direction="maximize")
    configurations = [
        {"lr": 0.01, "hidden_size": 182, "dropout": 0.0536},
        {"lr": 0.02, "hidden_size": 184, "dropout": 0.1 + 0.2},  # on both grids
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "Fixed parameter ... is out of range" would fail the test
        warm = enqueue_configurations(study, space, configurations, "--from old")
        trial = study.ask()  # takes the first queued configuration
        values = space.sample(trial)  # where Optuna would warn about a fixed value off its distribution
    assert warm is not None
    assert list(warm.queued) == [{"lr": 0.01}, {"lr": 0.02, "hidden_size": 184, "dropout": 0.1 + 0.2}]
    assert [d.split(" (")[0] for d in warm.dropped] == ["hidden_size=182", "dropout=0.0536"]
    assert "not on the grid 8, 16, ..., 296 (step 8)" in warm.dropped[0]
    assert "not on the grid 0, 0.1, ..., 0.5 (step 0.1)" in warm.dropped[1]
    assert values["lr"] == 0.01 and (values["hidden_size"] - 8) % 8 == 0 and values["hidden_size"] != 182


def test_at_most_the_budget_is_queued_and_the_rest_is_listed(write_space) -> None:
    space = _space(write_space)
    study = optuna.create_study(direction="maximize")
    configurations = [{"lr": lr} for lr in (0.01, 0.02, 0.01, 0.03, 0.004)]  # one repeat
    seen: list[WarmStart | None] = []
    warm = enqueue_configurations(study, space, configurations, "--from old", budget=2, on_queued=seen.append)
    assert seen == [warm]  # reported as soon as it is queued
    again = enqueue_configurations(study, space, configurations, "--from old", budget=2, on_queued=seen.append)
    assert again is None and seen == [warm, None]  # once only
    assert warm is not None
    assert list(warm.queued) == [{"lr": 0.01}, {"lr": 0.02}]
    assert list(warm.over_budget) == [{"lr": 0.03}, {"lr": 0.004}] and warm.budget == 2
    assert warm.to_json()["over_budget"] == [{"lr": 0.03}, {"lr": 0.004}]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"lr": 0.01}, {"lr": 0.02}]
    # without a budget (a study with only a timeout), nothing is capped
    other = optuna.create_study(direction="maximize")
    unlimited = enqueue_configurations(other, space, configurations, "--from old")
    assert unlimited is not None and len(unlimited.queued) == 4 and not unlimited.over_budget
