"""The sampler a study runs with: TPE over a window of recent trials plus the best ones, exactly TPE below it."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.trial import FrozenTrial, TrialState

from hpo.config.algorithms import DEFAULT_SAMPLER, SAMPLERS, parse_algorithm
from hpo.study.samplers import (
    BEST_KEPT,
    DEFAULT_MAX_HISTORY,
    OPTUNA_LOG_NDTR,
    HistoryWindowSampler,
    TrialSeededSampler,
    build_sampler,
    vectorize_tpe_log_ndtr,
)
from hpo.study.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

WINDOW = 225  # the smallest max_history
X = FloatDistribution(0.0, 1.0)


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.storages.BaseStorage | None:
    """Optuna's in-memory storage, or a SQLite file as hpo opens it (read through Optuna's caching RDB wrapper)."""
    return None if request.param == "memory" else open_storage(f"sqlite:///{tmp_path / 'study.db'}", create=True)


class _Spy(optuna.samplers.RandomSampler):
    """Records which trials a sampler that reads the study like TPE does is shown."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[int]] = []

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        shown = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True)
        self.seen.append([t.number for t in shown])
        return super().sample_independent(study, trial, param_name, param_distribution)


def _add(study: optuna.Study, values: list[float | None], state: TrialState = TrialState.COMPLETE) -> None:
    for value in values:
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": X}, value=value, state=state))


def _value(i: int) -> float:
    """Values whose order has nothing to do with trial numbers."""
    return math.sin(i * 12.9898) % 1.0


def _shown(study: optuna.Study, spy: _Spy) -> list[int]:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, state=TrialState.FAIL)
    return spy.seen[-1]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_window_is_the_recent_trials_and_the_best_older_ones(
    storage: optuna.storages.BaseStorage | None, direction: str
) -> None:
    spy = _Spy()
    study = optuna.create_study(storage=storage, direction=direction, sampler=HistoryWindowSampler(spy, WINDOW))
    _add(study, [_value(i) for i in range(300)])
    _add(study, [None] * 3, state=TrialState.FAIL)
    _add(study, [_value(i) for i in range(300, 400)])
    shown = _shown(study, spy)

    everything = study.get_trials(deepcopy=False)  # the last one is the trial that was asked, now failed
    recent = everything[-WINDOW:]
    older = [t for t in everything[:-WINDOW] if t.state == TrialState.COMPLETE]
    ranked = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value or 0.0)
    best = ranked[-BEST_KEPT:] if direction == "maximize" else ranked[:BEST_KEPT]
    expected_best = sorted(t.number for t in best if t.number < recent[0].number)
    assert shown == expected_best + [t.number for t in recent if t.state == TrialState.COMPLETE]
    assert {t.number for t in best} <= set(shown)  # TPE's good group is the one the whole history gives
    assert len(older) > len(expected_best) > 0  # the window left most of the older trials out


def test_short_studies_are_shown_everything(storage: optuna.storages.BaseStorage | None) -> None:
    spy = _Spy()
    study = optuna.create_study(storage=storage, sampler=HistoryWindowSampler(spy, WINDOW))
    _add(study, [_value(i) for i in range(WINDOW + BEST_KEPT - 1)])  # with the trial asked: window and best
    assert _shown(study, spy) == list(range(WINDOW + BEST_KEPT - 1))


def test_a_trial_finishing_late_with_the_best_value_is_kept(storage: optuna.storages.BaseStorage | None) -> None:
    spy = _Spy()
    study = optuna.create_study(storage=storage, direction="maximize", sampler=HistoryWindowSampler(spy, WINDOW))
    _add(study, [0.5] * 10)
    slow = study.ask({"x": X})  # still running while many others finish
    _add(study, [0.1 + 0.001 * (i % 100) for i in range(WINDOW + BEST_KEPT)])
    assert slow.number not in _shown(study, spy)
    _add(study, [0.2] * 10)
    study.tell(slow, 0.99)
    _add(study, [0.2] * 10)
    shown = _shown(study, spy)
    assert slow.number in shown and slow.number < study.trials[-WINDOW].number


def test_infeasible_trials_are_not_kept_as_best(storage: optuna.storages.BaseStorage | None) -> None:
    spy = _Spy()
    study = optuna.create_study(storage=storage, direction="maximize", sampler=HistoryWindowSampler(spy, WINDOW))
    infeasible = optuna.trial.create_trial(
        params={"x": 0.5},
        distributions={"x": X},
        value=0.99,
        system_attrs={"constraints": [1.0]},  # how Optuna records Trial.set_constraint (violation 1.0 > 0)
    )
    study.add_trial(infeasible)
    _add(study, [_value(i) * 0.5 for i in range(300)])
    shown = _shown(study, spy)
    feasible = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))[1:], key=lambda t: t.value or 0)
    assert 0 not in shown  # the best value, but it breaks its constraint
    assert {t.number for t in feasible[-BEST_KEPT:]} <= set(shown)


def test_several_objectives_see_the_recent_trials_only(storage: optuna.storages.BaseStorage | None) -> None:
    spy = _Spy()
    sampler = HistoryWindowSampler(spy, WINDOW)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"], sampler=sampler)
    for i in range(300):
        study.add_trial(
            optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": X}, values=[_value(i), _value(i + 1)])
        )
    assert _shown(study, spy) == list(range(301 - WINDOW, 300))  # the window ends with the trial asked (300)


def test_below_the_window_the_proposals_are_optuna_tpe_ones() -> None:
    def proposals(make: Callable[[optuna.samplers.TPESampler], optuna.samplers.BaseSampler]) -> list[dict[str, Any]]:
        tpe = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, multivariate=True, group=True)
        study = optuna.create_study(sampler=make(tpe))
        for _ in range(30):
            trial = study.ask()
            x = trial.suggest_float("x", -2.0, 2.0)
            kind = trial.suggest_categorical("kind", ["a", "b"])
            y = trial.suggest_int("y", 1, 8, log=True) if kind == "b" else 0
            study.tell(trial, (x - 0.3) ** 2 + y * 0.1)
        return [t.params for t in study.trials]

    assert proposals(lambda tpe: HistoryWindowSampler(tpe, WINDOW)) == proposals(lambda tpe: tpe)


def test_tpe_samples_jointly_from_the_window_of_a_long_study(storage: optuna.storages.BaseStorage | None) -> None:
    tpe = optuna.samplers.TPESampler(seed=0, n_startup_trials=10, multivariate=True, group=True)
    study = optuna.create_study(storage=storage, sampler=HistoryWindowSampler(tpe, WINDOW))
    for i in range(WINDOW + BEST_KEPT + 50):  # a history TPE cannot see whole
        x, y = _value(i), _value(i + 7)
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x, "y": y}, distributions={"x": X, "y": X}, value=(x - 0.7) ** 2 + (y - 0.2) ** 2
            )
        )

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
        return (x - 0.7) ** 2 + (y - 0.2) ** 2

    study.optimize(objective, n_trials=10)
    new = study.trials[-10:]
    # Optuna records the parameters TPE proposed jointly (its multivariate model of the window) on each trial.
    assert all("tpe:relative_params:0" in t.system_attrs for t in new)
    assert all(t.params["x"] > 0.4 and t.params["y"] < 0.5 for t in new)  # around the best ones, not at random


def test_max_history_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="max_history must be at least 225, but got max_history=224"):
        HistoryWindowSampler(optuna.samplers.TPESampler(), 224)


@pytest.mark.parametrize(
    ("raw", "window"),
    [
        (None, DEFAULT_MAX_HISTORY),
        ({"name": "tpe", "seed": 1}, DEFAULT_MAX_HISTORY),
        ({"name": "tpe", "max_history": 300}, 300),
        ({"name": "tpe", "max_history": None}, None),
        ({"name": "random"}, None),
    ],
)
def test_build_sampler_wraps_tpe_with_its_window(raw: Any, window: int | None) -> None:
    sampler = build_sampler(parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER))
    seed = parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER).seed
    if seed is not None:
        assert isinstance(sampler, TrialSeededSampler) and sampler.seed == seed
        sampler = sampler.sampler
    if window is None:
        assert not isinstance(sampler, HistoryWindowSampler)
        expected = optuna.samplers.RandomSampler if raw["name"] == "random" else optuna.samplers.TPESampler
        assert type(sampler) is expected
    else:
        assert isinstance(sampler, HistoryWindowSampler) and sampler.max_history == window
        assert type(sampler.sampler) is optuna.samplers.TPESampler


def test_the_vectorized_log_ndtr_agrees_with_optunas() -> None:
    assert OPTUNA_LOG_NDTR is not None
    a = np.concatenate([np.linspace(-60.0, 60.0, 24_001), [-1e3, -20.0, -20.000001, -19.99999, 6.0, 6.000001, 1e3]])
    vectorize_tpe_log_ndtr()
    ours, optunas = _truncnorm._log_ndtr(a), OPTUNA_LOG_NDTR(a)
    assert ours.shape == a.shape and ours.dtype == np.float64
    assert np.max(np.abs(ours - optunas)) < 1e-11
    large = np.abs(optunas) > 1e-300
    assert np.max(np.abs(ours[large] - optunas[large]) / np.abs(optunas[large])) < 1e-6


def test_tpe_proposes_the_same_with_the_vectorized_log_ndtr(monkeypatch: pytest.MonkeyPatch) -> None:
    def proposals() -> list[dict[str, Any]]:
        tpe = optuna.samplers.TPESampler(seed=5, n_startup_trials=5, multivariate=True, group=True)
        study = optuna.create_study(sampler=tpe)
        for _ in range(40):
            trial = study.ask()
            x = trial.suggest_float("x", -2.0, 2.0)
            n = trial.suggest_int("n", 1, 3)
            width = trial.suggest_int("width", 16, 256, log=True)
            step = trial.suggest_float("step", 0.0, 0.5, step=0.05)
            study.tell(trial, (x - 0.3) ** 2 + 0.1 * n + abs(math.log(width) - 4.0) + step)
        return [t.params for t in study.trials]

    monkeypatch.setattr(_truncnorm, "_log_ndtr", OPTUNA_LOG_NDTR)
    optunas = proposals()
    vectorize_tpe_log_ndtr()
    assert _truncnorm._log_ndtr is not OPTUNA_LOG_NDTR
    ours = proposals()
    assert [p.keys() for p in ours] == [p.keys() for p in optunas]
    for mine, theirs in zip(ours, optunas, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_only_a_tpe_sampler_installs_the_vectorized_log_ndtr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_truncnorm, "_log_ndtr", OPTUNA_LOG_NDTR)
    build_sampler(parse_algorithm({"name": "random"}, "study.sampler", SAMPLERS, DEFAULT_SAMPLER))
    assert _truncnorm._log_ndtr is OPTUNA_LOG_NDTR
    build_sampler(parse_algorithm({"name": "tpe"}, "study.sampler", SAMPLERS, DEFAULT_SAMPLER))
    assert _truncnorm._log_ndtr is not OPTUNA_LOG_NDTR


def _suggest(trial: optuna.Trial) -> tuple[Any, ...]:
    return (
        trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        trial.suggest_int("width", 8, 256, log=True),
        trial.suggest_categorical("optimizer", ["adam", "sgd"]),
    )


SEEDED = [
    {"name": "tpe", "seed": 0, "n_startup_trials": 10},
    {"name": "tpe", "seed": 0, "n_startup_trials": 10, "max_history": None, "multivariate": True},
    {"name": "random", "seed": 0},
    {"name": "nsga2", "seed": 0, "population_size": 4},
    {"name": "qmc", "seed": 0},
]


@pytest.mark.parametrize("raw", SEEDED, ids=lambda raw: f"{raw['name']}-{len(raw)}")
def test_workers_started_with_the_same_seed_propose_different_trials(tmp_path: Path, raw: dict[str, Any]) -> None:
    """Two workers started separately from the same file (same seed) share a study: each builds its own sampler, and
    they take turns. Optuna's samplers seeded alike propose the same trials then; with hpo's, no trial repeats."""
    settings = parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER)

    def proposals(make: Callable[[], optuna.samplers.BaseSampler], name: str) -> list[tuple[Any, ...]]:
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        workers = [
            optuna.create_study(study_name="s", storage=url, sampler=make(), load_if_exists=True) for _ in range(2)
        ]
        seen = []
        for _ in range(8):  # both workers ask, train at the same time, and tell
            asked = [(study, study.ask()) for study in workers]
            both = [_suggest(trial) for _, trial in asked]
            for (study, trial), params in zip(asked, both, strict=True):
                study.tell(trial, float(np.log(params[0]) + params[1] / 100))
            seen += both
        return seen

    from hpo.config.algorithms import build_sampler as optunas_sampler

    def repeats(seen: list[tuple[Any, ...]]) -> int:
        """Trials that repeat the one the other worker asked at the same time (NSGA-II's crossover repeats parameter
        sets on its own, one worker or two: only this pattern is the workers' doing)."""
        return sum(seen[i] == seen[i + 1] for i in range(0, len(seen), 2))

    hpo_proposals = proposals(lambda: build_sampler(settings), "hpo")
    assert repeats(hpo_proposals) == 0, hpo_proposals
    if raw["name"] != "nsga2":
        assert len(set(hpo_proposals)) == len(hpo_proposals), hpo_proposals
    if raw["name"] != "qmc":  # QMC takes its points in turn from the study, so its workers never repeat
        optuna_proposals = proposals(lambda: optunas_sampler(settings), "optuna")
        assert repeats(optuna_proposals) >= 4, optuna_proposals  # what the wrapper is for


@pytest.mark.parametrize("raw", SEEDED, ids=lambda raw: f"{raw['name']}-{len(raw)}")
def test_a_seeded_study_proposes_the_same_trials_again(raw: dict[str, Any]) -> None:
    """The same file run again (a new process, the same history) proposes the same trials, and another seed others."""
    settings = parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER)

    def run(seed: int) -> list[tuple[Any, ...]]:
        sampler = build_sampler(parse_algorithm({**raw, "seed": seed}, "study.sampler", SAMPLERS, DEFAULT_SAMPLER))
        study = optuna.create_study(sampler=sampler)
        seen = []
        for _ in range(10):
            trial = study.ask()
            seen.append(_suggest(trial))
            study.tell(trial, float(np.log(seen[-1][0]) + seen[-1][1] / 100))
        return seen

    assert settings.seed == 0
    assert run(0) == run(0)
    assert run(0) != run(1)
