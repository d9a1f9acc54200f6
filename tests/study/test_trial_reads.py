"""hpo's trial reads (SQLAlchemy Core) return exactly what Optuna's RDB storage (its ORM) returns, on SQLite and on a
real PostgreSQL server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.study import trial_reads
from hpo.study.retry import RetryingRDBStorage
from hpo.study.storage import open_storage
from tests.search.test_workers import postgres_url  # noqa: F401 (the fixture)

ORM = optuna.storages.RDBStorage  # Optuna's own reads, called on hpo's storage


def _comparable(trials: list[FrozenTrial]) -> str:
    """The trials as text (NaN, which never equals itself, and attribute order do not matter to Optuna)."""
    return json.dumps([vars(t) for t in trials], sort_keys=True, default=repr)


def _fill(storage: RetryingRDBStorage) -> tuple[int, int]:
    """A single-objective study with trials in every state and every kind of parameter, value and attribute, and a
    two-objective one; returns their ids."""
    study = optuna.create_study(study_name="one", storage=storage, direction="maximize")
    params = {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "layers": IntDistribution(1, 4),
        "width": IntDistribution(8, 512, log=True),
        "batch": IntDistribution(32, 256, step=32),
        "choice": CategoricalDistribution([None, True, "adam", 1.5, 3]),
    }
    values: list[Any] = [0.5, math.inf, -math.inf, None, None, None]
    states = [TrialState.COMPLETE] * 3 + [TrialState.PRUNED, TrialState.FAIL, None]
    for n, (value, state) in enumerate(zip(values, states, strict=True)):
        trial = study.ask(params)
        trial.set_user_attr("nested", {"a": [1, 2.5, None], "b": "text", "n": n})
        trial.set_user_attr("metrics", {"val/auroc": 0.9})
        trial.storage.set_trial_system_attr(trial._trial_id, "hpo:note", [n, "x"])
        for step, intermediate in enumerate((0.25, math.nan, math.inf, -math.inf)):
            trial.report(intermediate, step)
        if state is not None:
            study.tell(trial, value, state=state)
    study.ask()  # RUNNING, nothing set
    study.enqueue_trial({"lr": 0.01, "layers": 2}, user_attrs={"queued": True})  # WAITING
    two = optuna.create_study(study_name="two", storage=storage, directions=["maximize", "minimize"])
    for values2 in ((0.8, 3.0), (0.7, -math.inf)):
        trial = two.ask({"lr": params["lr"]})
        two.tell(trial, values2)
    return study._study_id, two._study_id


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> RetryingRDBStorage:
    url = f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_storage(url, create=True)
    assert isinstance(opened, RetryingRDBStorage)
    return opened


def test_trials_read_as_optuna_reads_them(storage: RetryingRDBStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = _fill(storage)
    storage.flush()
    everything = ORM._get_trials(storage, one, None, set(), -1)
    assert len(everything) == 8 and {t.state for t in everything} == set(TrialState)
    ids = [t._trial_id for t in everything] + [t._trial_id for t in ORM._get_trials(storage, two, None, set(), -1)]
    for trial_id in ids:
        assert _comparable([storage.get_trial(trial_id)]) == _comparable([ORM.get_trial(storage, trial_id)])
    unfinished = {t._trial_id for t in everything if not t.state.is_finished()}
    middle = everything[3]._trial_id
    cases: list[tuple[int, Any, set[int], int]] = [
        (one, None, set(), -1),
        (two, None, set(), -1),
        (one, [TrialState.COMPLETE], set(), -1),
        (one, [TrialState.RUNNING, TrialState.WAITING], set(), -1),
        (one, None, set(), middle),  # what Optuna's cache reads: trials after the last it holds...
        (one, None, unfinished | {everything[0]._trial_id}, middle),  # ...and the unfinished ones it holds
        (one, [TrialState.COMPLETE], {everything[1]._trial_id}, middle),
        (one, None, set(), ids[-1] + 100),
    ]
    for chunk in (trial_reads._CHUNK, 1, 2):  # also with the trials read, and listed, a few at a time
        monkeypatch.setattr(trial_reads, "_CHUNK", chunk)
        for case in cases:
            mine, optunas = storage._get_trials(*case), ORM._get_trials(storage, *case)
            assert _comparable(mine) == _comparable(optunas), (chunk, case)
            assert [t.number for t in mine] == [t.number for t in optunas]
    assert [t.number for t in storage._get_trials(one, None, set(), middle)] == [4, 5, 6, 7]


def test_missing_trials_and_studies_raise_as_optuna_does(storage: RetryingRDBStorage) -> None:
    with pytest.raises(KeyError) as mine:
        storage.get_trial(12345)
    with pytest.raises(KeyError) as optunas:
        ORM.get_trial(storage, 12345)
    assert str(mine.value) == str(optunas.value)
    with pytest.raises(KeyError):
        storage._get_trials(999, None, set(), -1)
    with pytest.raises(KeyError):
        ORM._get_trials(storage, 999, None, set(), -1)


def test_a_study_read_through_optunas_cache_is_the_same(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _fill(open_storage(url, create=True))
    ours = optuna.load_study(study_name="one", storage=open_storage(url, create=False))
    plain = optuna.load_study(study_name="one", storage=url)
    assert _comparable(ours.trials) == _comparable(plain.trials)
    assert ours.best_trial.number == plain.best_trial.number == 1  # +inf


def test_times_are_local_as_optuna_returns_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna stores a trial's start and completion as UTC and returns them as local time: so does hpo's read, east
    and west of UTC."""
    import time

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, create=True)
    study = optuna.create_study(study_name="t", storage=storage)
    study.tell(study.ask(), 1.0)
    trial_id = study.trials[0]._trial_id
    try:
        for zone in ("Asia/Tokyo", "America/Los_Angeles"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            mine, optunas = storage.get_trial(trial_id), ORM.get_trial(storage, trial_id)
            assert (mine.datetime_start, mine.datetime_complete) == (optunas.datetime_start, optunas.datetime_complete)
            assert _comparable(storage._get_trials(study._study_id, None, set(), -1)) == _comparable([optunas])
    finally:
        monkeypatch.undo()
        time.tzset()
