"""Retrying a lost storage connection, on real SQLite files: "database is locked" is SQLite's transient error, a
second connection holding the lock plays the outage, and a commit whose answer is lost is injected at the driver."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import sqlalchemy.event
from optuna.trial import TrialState

from hpo.errors import StudyError
from hpo.study.retry import (
    CREATE_TOKEN_KEY,
    DEFAULT_STORAGE_RETRY,
    STORAGE_RETRY_ENV,
    RetryingRDBStorage,
    StorageUnavailableError,
    storage_outage,
    storage_retry_seconds,
    transient_cause,
)
from hpo.study.storage import describe_storage_error, open_storage


def _storage(path: Path, retry_seconds: float = 30, **kwargs: Any) -> RetryingRDBStorage:
    """A retrying storage that gives up on a locked file at once (SQLite's own wait would hide the outage)."""
    url = f"sqlite:///{path}"
    return RetryingRDBStorage(
        url,
        retry_seconds=retry_seconds,
        label=url,
        describe=lambda exc: describe_storage_error(exc, url),
        engine_kwargs={"connect_args": {"timeout": 0.01}},
        **kwargs,
    )


@contextmanager
def _locked(path: Path) -> Iterator[threading.Event]:
    """Hold an exclusive lock on the SQLite file (no other connection may read or write) until the event is set."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN EXCLUSIVE")
    release = threading.Event()

    def unlock() -> None:
        release.wait()
        connection.execute("ROLLBACK")
        connection.close()

    thread = threading.Thread(target=unlock)
    thread.start()
    try:
        yield release
    finally:
        release.set()
        thread.join()


def _lose_the_answer(storage: optuna.storages.RDBStorage, statement: str) -> dict[str, int]:
    """Make the next commit of a transaction that ran ``statement...`` reach the file, then fail as if the
    connection died before its answer came back (the one write a retry could do twice)."""
    state = {"armed": 0, "left": 1, "fired": 0}

    def arm(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.startswith(statement) and state["left"]:
            state["armed"] = 1

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", arm)
    commit = storage.engine.dialect.do_commit

    def commit_then_fail(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        if state["armed"]:
            state.update(armed=0, left=0, fired=1)
            raise sqlite3.OperationalError("database is locked")

    storage.engine.dialect.do_commit = commit_then_fail  # type: ignore[method-assign]
    return state


@pytest.mark.parametrize(
    ("value", "expected"), [(None, DEFAULT_STORAGE_RETRY), ("", DEFAULT_STORAGE_RETRY), ("0", 0.0), ("2.5", 2.5)]
)
def test_retry_seconds_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: float
) -> None:
    if value is None:
        monkeypatch.delenv(STORAGE_RETRY_ENV, raising=False)
    else:
        monkeypatch.setenv(STORAGE_RETRY_ENV, value)
    assert storage_retry_seconds() == expected


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_bad_retry_seconds_name_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv(STORAGE_RETRY_ENV, value)
    with pytest.raises(StudyError, match=rf"\$HPO_STORAGE_RETRY: must be a number of seconds.*got '{value}'"):
        open_storage(f"sqlite:///{tmp_path / 'study.db'}", create=True)


def test_transient_errors_are_told_apart(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    refused = sqlalchemy.create_engine(f"postgresql+psycopg://hpo:pw@127.0.0.1:{port}/hpo")
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        refused.connect()
    assert transient_cause(caught.value, "postgresql") is caught.value

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.01})
    with engine.connect() as connection:
        with pytest.raises(sqlalchemy.exc.OperationalError) as missing:
            connection.exec_driver_sql("SELECT * FROM no_such_table")
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER UNIQUE)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        connection.commit()
        with pytest.raises(sqlalchemy.exc.IntegrityError) as duplicate:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert transient_cause(missing.value, "sqlite") is None
    assert transient_cause(duplicate.value, "sqlite") is None
    with (
        _locked(tmp_path / "x.db"),
        engine.connect() as connection,
        pytest.raises(sqlalchemy.exc.OperationalError) as locked,
    ):
        connection.exec_driver_sql("SELECT * FROM t")
    wrapped = RuntimeError("while handling")
    wrapped.__context__ = locked.value
    assert transient_cause(wrapped, "sqlite") is locked.value


def test_an_outage_shorter_than_the_retry_time_is_invisible(tmp_path: Path) -> None:
    storage = _storage(tmp_path / "study.db")
    study = optuna.create_study(storage=storage, study_name="s")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        with _locked(tmp_path / "study.db") as release:
            threading.Timer(0.5, release.set).start()
            trial.set_user_attr("during", "outage")  # deferred...
            storage.flush()  # ...and written here, retrying until the lock goes
        trial.report(x, 0)
        return x

    study.optimize(objective, n_trials=2)
    reread = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state for t in reread.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(t.user_attrs == {"during": "outage"} and t.intermediate_values for t in reread.trials)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_long_outage_raises_one_error_then_fails_fast(tmp_path: Path) -> None:
    storage = _storage(tmp_path / "study.db", retry_seconds=0.3, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with _locked(tmp_path / "study.db"):
        storage.record_heartbeat(trial._trial_id)  # the heartbeat thread gives up quietly
        with pytest.raises(StorageUnavailableError) as gave_up:
            trial.set_user_attr("a", 1)
            trial.should_prune()  # a read: writes the deferred attribute first
    message = str(gave_up.value)
    assert message.startswith(f"sqlite:///{tmp_path / 'study.db'}: lost the connection to the study storage")
    assert "database is locked" in message and "--storage-retry" in message and "HPO_STORAGE_RETRY" in message
    assert "\n" not in message
    with pytest.raises(StorageUnavailableError) as again:  # the lock is gone, but this process gave up on it
        study.tell(trial, 1.0)
    chained = UnboundLocalError("Optuna's own, raised while handling it")
    chained.__context__ = again.value
    assert storage_outage(chained) is again.value and storage_outage(RuntimeError()) is None
    fresh = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [(t.state, t.user_attrs) for t in fresh.trials] == [(TrialState.RUNNING, {})]


@pytest.mark.parametrize("retrying", [True, False])
def test_a_lost_answer_to_a_commit_creates_no_second_trial(tmp_path: Path, retrying: bool) -> None:
    storage = _storage(tmp_path / "study.db") if retrying else optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, study_name="s")
    lost = _lose_the_answer(storage, "INSERT INTO trials ")
    trial = study.ask()
    assert lost["fired"] == 1
    trials = study.get_trials()
    if not retrying:  # Optuna alone retries the creation and runs two trials: what the token prevents
        assert len(trials) == 2
        return
    assert [(t.number, t.state) for t in trials] == [(trial.number, TrialState.RUNNING)]
    assert set(trials[0].system_attrs) == {CREATE_TOKEN_KEY}


def test_a_lost_answer_to_finishing_a_trial_is_success(tmp_path: Path) -> None:
    storage = _storage(tmp_path / "study.db")
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.5})
    lost = _lose_the_answer(storage, "UPDATE trials SET state")
    popped = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # WAITING -> RUNNING, answer lost
    assert lost["fired"] == 1 and popped.params == {"x": 0.5}
    lost = _lose_the_answer(storage, "UPDATE trials SET state")
    frozen = study.tell(popped, 0.25)  # RUNNING -> COMPLETE, answer lost: no "already finished" error
    assert lost["fired"] == 1 and frozen.state == TrialState.COMPLETE
    assert [(t.state, t.value, t.params) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.25, {"x": 0.5})]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_no_trial_is_stale_right_after_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    storage = _storage(path, heartbeat_interval=1, grace_period=60)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(path) as connection:  # its worker went quiet an hour ago
        connection.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    with _locked(path) as release:
        threading.Timer(0.3, release.set).start()
        study.set_user_attr("seen", "an outage")
    # Every worker's heartbeat stopped during the outage: none is judged dead until they had time to send one.
    assert storage._get_stale_trial_ids(study._study_id) == []
    assert _storage(path, heartbeat_interval=1, grace_period=60)._get_stale_trial_ids(study._study_id) == [
        trial._trial_id
    ]


def test_open_storage_gives_a_retrying_storage(tmp_path: Path) -> None:
    sqlite = open_storage(f"sqlite:///{tmp_path / 'study.db'}", create=True, retry_seconds=7)
    assert isinstance(sqlite, RetryingRDBStorage) and sqlite.retry_seconds == 7
    assert "pool_pre_ping" not in sqlite.engine_kwargs


def test_optunas_fallback_warning_is_dropped_for_a_lost_connection_only(tmp_path: Path) -> None:
    _storage(tmp_path / "study.db")
    logger = logging.getLogger("optuna.storages._rdb.storage")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.01})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.commit()
        for locked in (True, False):
            with _locked(tmp_path / "x.db") if locked else nullcontext(), engine.connect() as connection:
                try:
                    connection.exec_driver_sql("SELECT * FROM t" if locked else "SELECT * FROM no_such_table")
                except sqlalchemy.exc.OperationalError as exc:  # what Optuna's _get_trials does
                    logger.warning(f"Caught an error from sqlalchemy: {exc!s}. Falling back to a slower alternative.")
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and "no such table" in seen[0]


def _committed(path: Path) -> dict[str, Any]:
    """What another process sees of the study's one trial: its user attributes and intermediate values."""
    with sqlite3.connect(path) as connection:
        attrs = dict(connection.execute("SELECT key, value_json FROM trial_user_attributes").fetchall())
        values = dict(connection.execute("SELECT step, intermediate_value FROM trial_intermediate_values").fetchall())
    return {"attrs": attrs, "values": values}


def test_trial_writes_are_deferred_to_the_next_call_and_made_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    storage = _storage(path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    commits: list[int] = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda _conn: commits.append(1))
    for i in range(12):
        trial.set_user_attr(f"a{i}", {"i": i})
    trial.report(0.5, 0)
    trial.report(0.75, 1)
    assert commits == [] and _committed(path) == {"attrs": {}, "values": {}}  # nothing written yet
    assert storage.get_trial(trial._trial_id).user_attrs == {f"a{i}": {"i": i} for i in range(12)}  # a read sees all
    assert len(commits) == 2  # the 14 writes in one transaction, then the read's own
    assert _committed(path) == {"attrs": {f"a{i}": f'{{"i": {i}}}' for i in range(12)}, "values": {0: 0.5, 1: 0.75}}
    trial.set_user_attr("last", 1)
    study.tell(trial, 1.0)  # the tell writes what is deferred before it finishes the trial
    assert _committed(path)["attrs"]["last"] == "1"
    with pytest.raises(TypeError):  # refused where it is set, not at a later unrelated call
        study.ask().set_user_attr("bad", object())


def test_deferred_writes_to_a_trial_another_process_finished_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "study.db"
    storage = _storage(path)
    study = optuna.create_study(storage=storage, study_name="s")
    mine, lost = study.ask(), study.ask()
    mine.set_user_attr("kept", 1)
    lost.set_user_attr("dropped", 1)
    other = optuna.load_study(study_name="s", storage=f"sqlite:///{path}")  # another worker failed it meanwhile
    other._storage.set_trial_state_values(lost._trial_id, TrialState.FAIL)
    with caplog.at_level(logging.WARNING, logger="hpo.study.retry"):
        storage.flush()
    assert storage.get_trial(mine._trial_id).user_attrs == {"kept": 1}
    assert storage.get_trial(lost._trial_id).user_attrs == {}
    assert f"trial id {lost._trial_id} was finished by another process" in caplog.text


def test_deferred_writes_are_bounded(tmp_path: Path) -> None:
    storage = _storage(tmp_path / "study.db")
    trial = optuna.create_study(storage=storage, study_name="s").ask()
    for step in range(600):
        trial.report(float(step), step)
    assert len(storage._pending) < 512
    assert len(_committed(tmp_path / "study.db")["values"]) >= 512


def test_parameters_are_deferred_after_the_first_and_refused_where_suggested(tmp_path: Path) -> None:
    from hpo.study.retry import flush_trial_writes

    path = tmp_path / "study.db"
    study = optuna.create_study(storage=_storage(path), study_name="s", sampler=optuna.samplers.RandomSampler(0))
    first = study.ask()
    first.suggest_float("x", 0, 1)  # new to this process: written and checked against the study at once
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM trial_params").fetchone() == (1,)
    second = study.ask()
    x = second.suggest_float("x", 0, 1)  # known: deferred
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM trial_params").fetchone() == (1,)
    with pytest.raises(
        ValueError, match="different distribution kind"
    ):  # another kind of distribution: refused here, not at a flush
        second.suggest_int("x", 0, 3)
    flush_trial_writes(second)
    other = optuna.load_study(study_name="s", storage=f"sqlite:///{path}")
    assert other.trials[1].params == {"x": x}
