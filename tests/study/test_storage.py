from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from hpo.study.storage import TRIAL_STATE_INDEX, open_storage

PROCESSES = 6


def _open(url: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait()  # all at once, like workers (or a dashboard) opening a database that does not exist yet
    try:
        open_storage(url, create=True)
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_the_same_new_sqlite_database_at_once_all_open_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for round_ in range(4):
        url = f"sqlite:///{tmp_path / f'race{round_}' / 'study.db'}"
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        processes = [context.Process(target=_open, args=(url, barrier, results)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    assert outcomes == ["ok"] * (4 * PROCESSES), [o for o in outcomes if o != "ok"][:3]


def test_check_study_storage_refuses_what_cannot_hold_a_study_and_leaves_nothing(tmp_path: Path) -> None:
    import pytest

    from hpo.errors import StudyError
    from hpo.paths import StudyPaths
    from hpo.study.storage import check_study_storage

    paths = StudyPaths(tmp_path / "studies", "s")
    assert check_study_storage(paths, None) == paths.default_storage_url
    assert list(tmp_path.iterdir()) == []  # checked, nothing made: the folder comes when the study is created
    (tmp_path / "afile").write_text("")
    cases = {
        f"sqlite:///{tmp_path}/afile/s/study.db": "as a database file \\(Not a directory\\)",
        "sqlite:////proc/hpo-nowhere/study.db": "cannot create the folder /proc/hpo-nowhere",
        f"sqlite:///{tmp_path}": "is a folder",
        "sqlite://": "in-memory SQLite database",
        "nosuchdb://host/x": "unknown kind of database",
    }
    for url, reason in cases.items():
        with pytest.raises(StudyError, match=reason):
            check_study_storage(paths, url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _indexes_and_plan(path: Path) -> tuple[list[str], str]:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        names = [ix["name"] for ix in sqlalchemy.inspect(connection).get_indexes("trials")]
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT state, count(*) FROM trials WHERE study_id = 1 GROUP BY state"
        ).fetchall()
    engine.dispose()
    return names, str(plan)


def test_opening_for_a_run_indexes_trial_states_and_reading_leaves_the_file_alone(tmp_path: Path) -> None:
    # A study made by Optuna alone (no hpo index), with trials.
    path = tmp_path / "study.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    del study
    names, plan = _indexes_and_plan(path)
    assert TRIAL_STATE_INDEX not in names and "COVERING INDEX" not in plan

    open_storage(f"sqlite:///{path}", create=False).engine.dispose()  # a reader (dashboard, `hpo best`) writes nothing
    assert TRIAL_STATE_INDEX not in _indexes_and_plan(path)[0]

    open_storage(f"sqlite:///{path}", create=True).engine.dispose()  # a run adds the index, which the counts use
    names, plan = _indexes_and_plan(path)
    assert names.count(TRIAL_STATE_INDEX) == 1
    assert f"COVERING INDEX {TRIAL_STATE_INDEX}" in plan
    open_storage(f"sqlite:///{path}", create=True).engine.dispose()  # and the next run finds it there
    assert _indexes_and_plan(path)[0].count(TRIAL_STATE_INDEX) == 1
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{path}").trials) == 3


def test_trial_cache_reads_what_optunas_cache_reads(tmp_path: Path) -> None:
    import random

    from optuna.trial import TrialState

    from hpo.study.storage import TrialCache

    url = f"sqlite:///{tmp_path / 'study.db'}"
    workers = [
        optuna.create_study(study_name="s", storage=TrialCache(open_storage(url, create=True)), load_if_exists=True)
        for _ in range(2)
    ]
    rng = random.Random(0)
    running: list[tuple[optuna.Study, optuna.trial.Trial]] = []
    queries = [None, (TrialState.WAITING,), (TrialState.RUNNING,), (TrialState.WAITING, TrialState.RUNNING)]
    queries += [(TrialState.COMPLETE,), (TrialState.COMPLETE, TrialState.PRUNED), (TrialState.FAIL, TrialState.WAITING)]
    seen = set()
    for _ in range(120):
        study = rng.choice(workers)
        action = rng.random()
        if action < 0.15:
            study.enqueue_trial({"x": rng.random()})
        elif action < 0.55 or not running:
            trial = study.ask()  # takes a queued trial first, if any
            trial.suggest_float("x", 0, 1)
            running.append((study, trial))
        else:
            owner, trial = running.pop(rng.randrange(len(running)))
            state = rng.choice([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
            owner.tell(trial, rng.random() if state == TrialState.COMPLETE else None, state=state)
        truth = optuna.storages.get_storage(url)  # a fresh Optuna cache: every trial read from the database
        for states in queries:
            want = truth.get_all_trials(study._study_id, deepcopy=False, states=states)
            got = study._storage.get_all_trials(study._study_id, deepcopy=False, states=states)
            assert [(t.number, t.state) for t in got] == [(t.number, t.state) for t in want], states
            if states == (TrialState.WAITING,):  # read from the database: parameters and attributes too
                assert got == want
            seen.update(t.state for t in got)
    assert {TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL} <= seen

    # Trials cached out of number order (a trial committed after a later-numbered one) still come out sorted.
    cache = workers[0]._storage
    info = cache._studies[workers[0]._study_id]
    info.trials = dict(reversed(info.trials.items()))
    numbers = [t.number for t in cache.get_all_trials(workers[0]._study_id, deepcopy=False)]
    assert numbers == sorted(numbers) and len(numbers) == len(info.trials)
    assert list(info.trials) == sorted(info.trials)  # the cache itself is back in order: later reads need no sort


def test_a_new_workers_cache_holds_the_trials_in_number_order(tmp_path: Path) -> None:
    """A worker's first ask creates its trial before anything reads the study's earlier trials into the cache (ask's
    read of queued trials reads those alone): the cache must still end up in number order, so that the reads of all
    trials (one per trial, by the sampler) need not sort them."""
    from hpo.study.storage import TrialCache

    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=TrialCache(open_storage(url, create=True)))
    first.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    worker = optuna.load_study(study_name="s", storage=TrialCache(open_storage(url, create=False)))
    trial = worker.ask()  # random sampling for the first 10 trials: reads nothing before creating the trial
    info = worker._storage._studies[worker._study_id]
    assert list(info.trials) == [5]  # the new trial entered the cache first
    numbers = [t.number for t in worker.get_trials(deepcopy=False)]
    assert numbers == [0, 1, 2, 3, 4, 5]
    assert list(info.trials) == numbers
    worker.tell(trial, 0.5)
    worker.ask()
    assert list(info.trials) == [t.number for t in worker.get_trials(deepcopy=False)] == list(range(7))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked by hand, as a worker killed before its heartbeat
@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
def test_a_trial_without_heartbeat_is_failed_after_grace_period_in_any_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """Optuna stores a trial's start as UTC: a trial that never sent a heartbeat is failed once it is older than
    grace_period, not hours early east of UTC (a live trial about to send its first one) or hours late west of it."""
    import datetime as dt
    import time

    from optuna.storages._rdb import models

    from hpo.study.storage import fail_trials_without_heartbeat

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        url = f"sqlite:///{tmp_path / 'study.db'}"
        storage = open_storage(url, create=True, heartbeat_interval=1, grace_period=30)
        study = optuna.create_study(study_name="h", storage=storage)
        fresh, old = study.ask(), study.ask()  # running, no heartbeat: their workers "died" before the first one
        an_hour_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
        trials = models.TrialModel.__table__
        with storage.engine.begin() as connection:
            connection.execute(
                trials.update().where(trials.c.trial_id == old._trial_id).values(datetime_start=an_hour_ago)
            )
        assert fail_trials_without_heartbeat(study, grace_period=30) == [old.number]
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        assert states[fresh.number] == optuna.trial.TrialState.RUNNING
        assert states[old.number] == optuna.trial.TrialState.FAIL
    finally:
        monkeypatch.undo()
        time.tzset()
