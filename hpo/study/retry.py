"""Riding out storage outages: a lost database connection is retried with backoff for a while (a server restart, a
network blip), then the command stops with one message. The RDB storage every command opens does this."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Container, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna._typing import JSONSerializable
from optuna.distributions import BaseDistribution
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hpo.errors import StudyError
from hpo.study.trial_reads import read_study_trials, read_trial

__all__ = [
    "CREATE_TOKEN_KEY",
    "DEFAULT_STORAGE_RETRY",
    "STORAGE_RETRY_ENV",
    "RetryingRDBStorage",
    "StorageUnavailableError",
    "flush_trial_writes",
    "retry_transient",
    "storage_outage",
    "storage_retry_seconds",
    "transient_cause",
]

#: Environment variable with the seconds to keep retrying a lost storage connection (``hpo run --storage-retry``).
STORAGE_RETRY_ENV = "HPO_STORAGE_RETRY"
#: Long enough for a database server to restart or fail over, short enough that a dead server is reported soon.
DEFAULT_STORAGE_RETRY = 60.0
#: First and longest wait between attempts; the longest bounds how late a worker notices that the server is back.
_FIRST_DELAY, _MAX_DELAY = 0.25, 2.0
#: System attribute holding a random token on every trial this module creates: a retry after a lost commit finds
#: the trial the lost commit created instead of creating a second one.
CREATE_TOKEN_KEY = "hpo:create_token"
#: SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53: too many connections), the
#: server shutting down or starting up (57P01-57P03), and serialization failures and deadlocks (40001, 40P01).
_TRANSIENT_CLASSES = ("08", "53")
_TRANSIENT_STATES = ("57P01", "57P02", "57P03", "40001", "40P01")

T = TypeVar("T")


class StorageUnavailableError(StudyError):
    """The study storage could not be reached again within the retry time: the command stops."""


def storage_retry_seconds(value: str | None = None) -> float:
    """The seconds to keep retrying a lost storage connection: ``value``, else ``$HPO_STORAGE_RETRY``, else 60.

    Raises:
        StudyError: the value is not a finite number of seconds, 0 or more.
    """
    text = value if value is not None else os.environ.get(STORAGE_RETRY_ENV) or None
    if text is None:
        return DEFAULT_STORAGE_RETRY
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise StudyError(
            f"${STORAGE_RETRY_ENV}: must be a number of seconds, 0 or more (0: do not retry), but got {text!r}; "
            f"for example {STORAGE_RETRY_ENV}=120"
        )
    return seconds


def transient_cause(exc: BaseException, backend: str) -> BaseException | None:
    """The error in ``exc``'s chain that says the connection to the database was lost or refused, or None.

    A lost connection (SQLAlchemy marks it ``connection_invalidated``), a connection that cannot be made (refused,
    timed out, the server starting up or shutting down), too many connections, a deadlock: worth retrying. Anything
    else (bad SQL, a constraint, a damaged file, a wrong password) is not. On SQLite only "database is locked" is:
    a file does not go away and come back.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, StorageUnavailableError):
            return None  # already retried for the whole time
        if isinstance(error, sqlalchemy.exc.DBAPIError) and _is_transient(error, backend):
            return error
        pending += [error.__cause__, error.__context__]
    return None


def _is_transient(error: sqlalchemy.exc.DBAPIError, backend: str) -> bool:
    if backend == "sqlite":
        return isinstance(error, sqlalchemy.exc.OperationalError) and "database is locked" in str(error.orig)
    if error.connection_invalidated:
        return True
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code:
        return str(code)[:2] in _TRANSIENT_CLASSES or str(code) in _TRANSIENT_STATES
    # No SQLSTATE: the driver itself could not connect or lost the connection (refused, reset, timed out).
    return isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))


def storage_outage(exc: BaseException) -> StorageUnavailableError | None:
    """The :class:`StorageUnavailableError` behind ``exc``, if any (Optuna may raise another error while handling
    it, such as its own failure to record the trial as failed)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, StorageUnavailableError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def retry_transient(
    call: Callable[[], T],
    *,
    seconds: float,
    backend: str,
    give_up: Callable[[BaseException, float], StorageUnavailableError],
    already_done: Callable[[], T | None] | None = None,
    stop: Callable[[], StorageUnavailableError | None] = lambda: None,
) -> tuple[T, bool]:
    """``call()``, retried with exponential backoff and jitter while it fails for a transient reason.

    Args:
        call: the database work; it must be safe to run again after a failure (or ``already_done`` must say).
        seconds: how long to keep retrying after the first failure; 0 does not retry.
        backend: the SQLAlchemy backend name (``postgresql``, ``sqlite``), to tell transient errors apart.
        give_up: the error to raise, from the transient error and the seconds waited, once the time is up.
        already_done: asked before each retry: the result, when the failed attempt had done the work after all
            (its commit reached the server, only the answer was lost); None to run ``call`` again.
        stop: asked before each attempt: an error to raise at once (another thread of the process gave up).

    Returns:
        The result, and whether it took a retry.

    Raises:
        StorageUnavailableError: the error stayed for ``seconds``.
    """
    started: float | None = None
    attempt = 0
    while True:
        stopped = stop()
        if stopped is not None:
            raise StorageUnavailableError(str(stopped)) from None
        try:
            if started is not None and already_done is not None:
                done = already_done()
                if done is not None:
                    return done, True
            return call(), started is not None
        except Exception as exc:
            cause = transient_cause(exc, backend)
            if cause is None:
                raise
            now = time.monotonic()
            started = now if started is None else started
            waited = now - started
            if waited >= seconds:
                raise give_up(cause, waited) from None
            delay = min(_MAX_DELAY, _FIRST_DELAY * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            time.sleep(min(delay, seconds - waited))


class _RetriedQueryWarning(logging.Filter):
    """Drops Optuna's warning "Caught an error from sqlalchemy: ... Falling back to a slower alternative" (with the
    query's SQL) when the error is a lost connection: the storage retries that read, so it is no news to anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = sys.exc_info()[1]  # Optuna logs it while handling the error, in this thread
        if error is None or not record.getMessage().startswith("Caught an error from sqlalchemy"):
            return True
        backend = "sqlite" if isinstance(getattr(error, "orig", None), sqlite3.Error) else "server"
        return transient_cause(error, backend) is None


_OPTUNA_RDB_LOGGER = logging.getLogger("optuna.storages._rdb.storage")
_LOGGER = logging.getLogger(__name__)
#: Deferred trial writes held at most before they are written anyway.
_MAX_PENDING = 512


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every database call is retried while the connection is lost (see
    :func:`retry_transient`), for ``retry_seconds``; then that call, and every later one, raises
    :class:`StorageUnavailableError`.

    A retry never does a write twice: a new trial carries a token (the system attribute ``hpo:create_token``) so that
    a retry after a commit whose answer was lost returns the trial that commit created; finishing a trial that the lost
    commit already finished returns True; parameters, attributes and values are written as upserts anyway. The
    heartbeat thread never raises for an outage, and no trial counts as stale until the live workers have had a
    grace period to send a heartbeat again after it (a PostgreSQL server that just started counts as an outage).

    Args:
        url: the SQLAlchemy URL.
        retry_seconds: how long to retry a lost connection.
        label: the URL as messages may show it (credentials masked).
        describe: one line about a driver's error, credentials removed.
        **kwargs: :class:`optuna.storages.RDBStorage`'s own arguments.
    """

    def __init__(
        self,
        url: str,
        *,
        retry_seconds: float,
        label: str,
        describe: Callable[[BaseException], str],
        **kwargs: Any,
    ) -> None:
        self.retry_seconds = retry_seconds
        self._label = label
        self._describe = describe
        self._failure: StorageUnavailableError | None = None
        self._recovered_at: float | None = None
        self._retrying_tokens: set[str] = set()
        self._tokens_lock = threading.Lock()
        # Trial writes nobody waits for (user attributes, intermediate values, parameters), held until the next other
        # call (see flush).
        self._pending: dict[tuple[str, int, str | int], dict[str, Any]] = {}
        self._pending_lock = threading.RLock()
        if not any(isinstance(f, _RetriedQueryWarning) for f in _OPTUNA_RDB_LOGGER.filters):
            _OPTUNA_RDB_LOGGER.addFilter(_RetriedQueryWarning())
        super().__init__(url, **kwargs)
        self._dialect = self.engine.dialect.name

    def retrying(self, call: Callable[[], T], already_done: Callable[[], T | None] | None = None) -> T:
        """``call()`` (database work of its own on this storage's engine or sessions), retried as every call of
        this storage is (see :func:`retry_transient`).

        Raises:
            StorageUnavailableError: the connection stayed lost for the retry time, now or earlier.
        """
        self.flush()
        return self._retried(call, already_done)

    def _retried(self, call: Callable[[], T], already_done: Callable[[], T | None] | None = None) -> T:
        result, retried = retry_transient(
            call,
            seconds=self.retry_seconds,
            backend=self._dialect,
            give_up=self._give_up,
            already_done=already_done,
            stop=lambda: self._failure,
        )
        if retried:
            self._recovered_at = time.monotonic()
        return result

    _call = retrying

    # Write-behind: a trial's user attributes, intermediate values and parameters are written together, in one
    # transaction, by the next call that is not one of them (a read sees them; the trial's tell commits them first),
    # instead of a commit each. A trial writes a dozen attributes and, in a population, P intermediate values per epoch.

    def _defer(self, table: str, trial_id: int, key: str | int, row: dict[str, Any]) -> None:
        with self._pending_lock:
            self._pending[(table, trial_id, key)] = row  # a later write of the same attribute or step replaces it
            full = len(self._pending) >= _MAX_PENDING
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the deferred trial writes now, in one transaction (retried as every call is). Writes to a trial that
        another process finished meanwhile (its heartbeat went stale) are dropped, with a warning: Optuna would refuse
        each of them, and the trial's own tell reports that it is finished."""
        with self._pending_lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
            self._retried(partial(self._write_rows, pending))  # upserts: safe to run again

    def _write_rows(self, pending: dict[tuple[str, int, str | int], dict[str, Any]]) -> None:
        ids = sorted({trial_id for _, trial_id, _ in pending})
        with _create_scoped_session(self.scoped_session) as session:
            trials = models.TrialModel.__table__
            states: dict[int, TrialState] = dict(
                session.execute(
                    sqlalchemy.select(trials.c.trial_id, trials.c.state).where(trials.c.trial_id.in_(ids))
                ).all()
            )
            for trial_id in ids:
                if trial_id not in states:
                    raise KeyError(f"no trial with id {trial_id}")  # as Optuna's own write raises
                if states[trial_id].is_finished():
                    _LOGGER.warning(
                        "trial id %d was finished by another process before these writes of its attributes or "
                        "intermediate values: they are dropped",
                        trial_id,
                    )
            for table, model, key, replace in (
                ("params", models.TrialParamModel, "param_name", False),  # a parameter, once set, stays (as Optuna's)
                ("attrs", models.TrialUserAttributeModel, "key", True),
                ("values", models.TrialIntermediateValueModel, "step", True),
            ):
                rows = [row for (kind, i, _), row in pending.items() if kind == table and not states[i].is_finished()]
                if rows:
                    self._upsert(session, model, key, rows, replace)

    def _upsert(self, session: Any, model: Any, key: str, rows: list[dict[str, Any]], replace: bool) -> None:
        """Insert ``rows`` into ``model``'s table; a row with the same trial and ``key`` is replaced (``replace``) or
        kept. One statement on SQLite and PostgreSQL; row by row elsewhere."""
        columns = [c for c in rows[0] if c not in ("trial_id", key)]
        if self._dialect in ("sqlite", "postgresql"):
            insert = (sqlite_insert if self._dialect == "sqlite" else postgresql_insert)(model)
            index = [model.trial_id, getattr(model, key)]
            statement = (
                insert.on_conflict_do_update(
                    index_elements=index, set_={c: getattr(insert.excluded, c) for c in columns}
                )
                if replace
                else insert.on_conflict_do_nothing(index_elements=index)
            )
            session.execute(statement, rows)
            return
        for row in rows:
            found = session.query(model).filter_by(trial_id=row["trial_id"], **{key: row[key]}).one_or_none()
            if found is None:
                session.add(model(**row))
            elif replace:
                for c in columns:
                    setattr(found, c, row[c])

    def heartbeats_trustworthy(self) -> bool:
        """False for a grace period (plus the longest wait between retries) after an outage, this process's own or
        a PostgreSQL server start: every worker's heartbeat stopped with the storage, so a trial without a recent
        heartbeat may still have a live worker; True otherwise.

        Raises:
            StorageUnavailableError: the connection stayed lost for the retry time.
        """
        quiet = (self.grace_period or 2 * (self.heartbeat_interval or 0)) + _MAX_DELAY
        if self._recovered_at is not None and time.monotonic() - self._recovered_at < quiet:
            return False
        return not self.retrying(lambda: self._server_started_within(quiet))

    def _give_up(self, cause: BaseException, waited: float) -> StorageUnavailableError:
        error = StorageUnavailableError(
            f"{self._label}: lost the connection to the study storage and could not get it back in {waited:.0f} s "
            f"of retrying ({self._describe(cause)}). Check that the database server is running and reachable from "
            "this host, then rerun the same command: the study resumes where it stopped, and a trial this worker "
            "left unfinished is failed and run again once its heartbeat is stale. To wait longer for the storage, "
            f"pass --storage-retry SECONDS to hpo run or set ${STORAGE_RETRY_ENV} (now {self.retry_seconds:g} s)."
        )
        self._failure = self._failure or error
        return error

    # Trials: creating one, and finishing one, are the writes a retry could otherwise do twice.

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        token = uuid.uuid4().hex
        try:
            return self._call(partial(super()._create_new_trial, study_id, _with_token(template_trial, token)))
        finally:
            with self._tokens_lock:
                self._retrying_tokens.discard(token)

    def _get_prepared_new_trial(self, study_id: int, template_trial: FrozenTrial | None, session: Any) -> Any:
        # Called by every attempt to create a trial (Optuna retries a failed creation itself too), inside the
        # transaction that creates it: an attempt after the first returns the trial an earlier one committed.
        token = (template_trial.system_attrs if template_trial else {}).get(CREATE_TOKEN_KEY)
        if token is not None:
            with self._tokens_lock:
                again = token in self._retrying_tokens
                self._retrying_tokens.add(token)
            if again:
                created = (
                    session.query(models.TrialModel)
                    .join(models.TrialSystemAttributeModel)
                    .filter(
                        models.TrialModel.study_id == study_id,
                        models.TrialSystemAttributeModel.key == CREATE_TOKEN_KEY,
                        models.TrialSystemAttributeModel.value_json == json.dumps(token),
                    )
                    .one_or_none()
                )
                if created is not None:
                    return created
        return super()._get_prepared_new_trial(study_id, template_trial, session)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        get_trial = super().get_trial

        def already_done() -> bool | None:
            # The lost commit went through: the trial is in that state now. (A queued trial that is RUNNING now is
            # this worker's: workers take queued trials one at a time, under the ask lock.)
            return True if get_trial(trial_id).state == state and state != TrialState.WAITING else None

        return self._call(partial(super().set_trial_state_values, trial_id, state, values), already_done)

    # Heartbeats: never raise in Optuna's heartbeat thread, and no false stale trials after an outage.

    def record_heartbeat(self, trial_id: int) -> None:
        # Not lost when it gives up: the storage keeps the failure, and the trial's own thread raises it next.
        with contextlib.suppress(StorageUnavailableError):
            self._call(partial(super().record_heartbeat, trial_id))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if not self.heartbeats_trustworthy():
            return []  # the heartbeats of live workers stopped during the outage too: they are not dead
        return self._call(partial(super()._get_stale_trial_ids, study_id))

    def _server_started_within(self, seconds: float) -> bool:
        """True when the PostgreSQL server started less than ``seconds`` ago: a restart this process did not see
        (it started after it, or made no call during it) still stopped every heartbeat."""
        if self._dialect != "postgresql":
            return False
        with self.engine.connect() as connection:
            uptime = connection.exec_driver_sql(
                "SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())"
            ).scalar_one()
        return float(uptime) < seconds

    # Every other call reads, or writes something a second write leaves the same (an upsert, a unique row).

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._call(partial(super().create_new_study, directions, study_name))

    def delete_study(self, study_id: int) -> None:
        self._call(partial(super().delete_study, study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(partial(super().set_study_user_attr, study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        self._call(partial(super().set_study_system_attr, study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call(partial(super().get_study_id_from_name, study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call(partial(super().get_study_name_from_id, study_id))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call(partial(super().get_study_directions, study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(partial(super().get_study_user_attrs, study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(partial(super().get_study_system_attrs, study_id))

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call(partial(super().get_trial_user_attrs, trial_id))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call(partial(super().get_trial_system_attrs, trial_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._call(super().get_all_studies)

    def _set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
        previous_distribution: BaseDistribution | None,
    ) -> None:
        if previous_distribution is not None:
            # The parameter is known to this process (Optuna's cache passes its distribution): checked here, where it
            # is suggested, and written with the trial's other deferred writes (the objective flushes them once all
            # its parameters are suggested: see flush_trial_writes).
            optuna.distributions.check_distribution_compatibility(previous_distribution, distribution)
            row = {
                "trial_id": trial_id,
                "param_name": param_name,
                "param_value": param_value_internal,
                "distribution_json": optuna.distributions.distribution_to_json(distribution),
            }
            self._defer("params", trial_id, param_name, row)
            return
        # The first time this process sees the parameter: Optuna checks it against the study's earlier trials.
        self._call(
            partial(
                super()._set_trial_param,
                trial_id,
                param_name,
                param_value_internal,
                distribution,
                previous_distribution,
            )
        )

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._call(partial(super().get_trial_param, trial_id, param_name))

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
        row = {"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind}
        self._defer("values", trial_id, step, row)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        # Serialised now: a value JSON cannot hold is refused where the caller sets it, as Optuna's own write does.
        self._defer("attrs", trial_id, key, {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)})

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        self._call(partial(super().set_trial_system_attr, trial_id, key, value))

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call(partial(super().get_trial_id_from_study_id_trial_number, study_id, trial_number))

    # Reads: the same trials as Optuna's, read with SQLAlchemy Core instead of its ORM (hpo.study.trial_reads).

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call(partial(self._read, read_trial, trial_id))

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        read = partial(self._read, read_study_trials, study_id, states, included_trial_ids, trial_id_greater_than)
        return self._call(read)

    def _read(self, reader: Callable[..., T], *args: Any) -> T:
        """``reader(connection, *args)`` in one transaction of a session, whose errors Optuna's own reads raise."""
        with _create_scoped_session(self.scoped_session) as session:
            return reader(session.connection(), *args)

    def _get_best_trial_id(self, study_id: int, direction: StudyDirection) -> int:
        return self._call(partial(super()._get_best_trial_id, study_id, direction))


def flush_trial_writes(trial: optuna.Trial | optuna.trial.FixedTrial) -> None:
    """Write the deferred writes of ``trial``'s study now, if its storage defers them (see
    :meth:`RetryingRDBStorage.flush`): after a trial's parameters are suggested, so that a trial whose worker dies
    is retried with the same parameters. Nothing for a ``FixedTrial`` (no storage)."""
    study = getattr(trial, "study", None)
    if study is None:
        return
    backend = getattr(study._storage, "_backend", study._storage)
    if isinstance(backend, RetryingRDBStorage):
        backend.flush()


def _with_token(template: FrozenTrial | None, token: str) -> FrozenTrial:
    """``template`` (a copy), or the trial Optuna creates without one (RUNNING, started now), carrying ``token``."""
    if template is None:
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
    else:
        template = copy.deepcopy(template)
    template.system_attrs = {**template.system_attrs, CREATE_TOKEN_KEY: token}
    return template
