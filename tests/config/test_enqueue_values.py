"""`study.enqueue`: every queued value of a searched parameter is one its trials can take (in range, on the `step`
grid, one of the choices), checked with the rest of the file, before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpo.config.experiment import load_experiment
from hpo.errors import ConfigError
from tests.conftest import tiny_space

HIDDEN = {"type": "int", "low": 8, "high": 296, "step": 8}
DROPOUT = {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1}


def _space(name: str, spec: Any, value: Any) -> dict[str, Any]:
    doc = tiny_space(study={"enqueue": [{"lr": 0.01}, {"lr": 0.01, name: value}]})
    doc["params"][name] = spec
    return doc


@pytest.mark.parametrize(
    ("name", "spec", "value", "expected"),
    [
        (
            "hidden_size",
            HIDDEN,
            182,
            "got 182: not on the grid 8, 16, ..., 296 (step 8); the nearest values are 176 and 184",
        ),
        (
            "dropout",
            DROPOUT,
            0.0536,
            "got 0.0536: not on the grid 0, 0.1, ..., 0.5 (step 0.1); the nearest values are 0 and 0.1",
        ),
        ("hidden_size", HIDDEN, 304, "got 304: outside [8, 296]"),
        ("hidden_size", HIDDEN, 16.5, "got 16.5: not a whole number"),
        ("dropout", {"type": "float", "low": 0.0, "high": 0.5}, 0.6, "got 0.6: outside [0, 0.5]"),
        ("lr", {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}, 1e-4, "got 0.0001: outside [0.001, 0.03]"),
        ("optimizer", {"type": "categorical", "choices": ["adam", "sgd"]}, "adamw", "not one of ['adam', 'sgd']"),
        ("batch_size", {"type": "categorical", "choices": [1, 64]}, True, "got True: not one of [1, 64]"),
    ],
)
def test_a_value_its_parameter_cannot_take_is_refused_naming_the_entry(
    write_space, name: str, spec: Any, value: Any, expected: str
) -> None:
    path = write_space(_space(name, spec, value))
    with pytest.raises(ConfigError) as raised:
        load_experiment(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: study.enqueue[1].{name}: must be a value params.{name} can take"), message
    assert expected in message and "remove it from study.enqueue[1]" in message


@pytest.mark.parametrize(
    ("name", "spec", "value"),
    [
        ("hidden_size", HIDDEN, 184),
        ("hidden_size", HIDDEN, 296),
        ("dropout", DROPOUT, 0.3),
        ("dropout", DROPOUT, 0.1 + 0.2),  # 0.30000000000000004: on the grid as Optuna judges it
        ("dropout", DROPOUT, 0.5),
        ("lr", {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}, 3e-2),
    ],
)
def test_a_value_on_the_grid_is_kept(write_space, name: str, spec: Any, value: Any) -> None:
    exp = load_experiment(write_space(_space(name, spec, value)))
    assert exp.study.enqueue[1][name] == value


def test_fixed_and_unknown_parameters_are_left_to_the_warm_start(write_space) -> None:
    """An override may fix a parameter the file searches: its queued value is left out when the study starts."""
    doc = tiny_space(study={"enqueue": [{"lr": 0.01, "n_layers": 2, "hidden_size": 7, "unknown": 1}]})
    exp = load_experiment(write_space(doc), ["params.n_layers=1"])
    assert exp.study.enqueue == ({"lr": 0.01, "n_layers": 2, "hidden_size": 7, "unknown": 1},)


def test_an_override_that_moves_the_range_away_from_a_queued_value_is_refused(write_space) -> None:
    doc = tiny_space(study={"enqueue": [{"n_layers": 2}]})
    with pytest.raises(ConfigError, match=r"study\.enqueue\[0\]\.n_layers: .* got 2: outside \[3, 4\].*overrides"):
        load_experiment(write_space(doc), ["params.n_layers={type: int, low: 3, high: 4}"])


def test_the_default_search_space_queues_valid_values() -> None:
    exp = load_experiment(Path(__file__).resolve().parents[2] / "search_spaces" / "default.yaml")
    assert exp.study.enqueue
