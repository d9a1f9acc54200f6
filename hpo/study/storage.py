"""Optuna RDB storages: the default SQLite file per study, or any SQLAlchemy URL, with passwords kept out of text."""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.engine
import sqlalchemy.event
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from hpo.errors import StudyError
from hpo.paths import StudyPaths

__all__ = ["STORAGE_ENV", "open_storage", "redact_url", "resolve_storage_url"]

#: Environment variable read when ``--storage`` is not given.
STORAGE_ENV = "HPO_STORAGE"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``; unparseable URLs are hidden entirely."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<storage URL>"


def resolve_storage_url(paths: StudyPaths, storage: str | None) -> str:
    """``storage``, else ``$HPO_STORAGE``, else the study's own SQLite file."""
    url = storage or os.environ.get(STORAGE_ENV) or None
    if url is None:
        return paths.default_storage_url
    try:
        make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StudyError(
            f"--storage: {redact_url(url)!r} is not a SQLAlchemy URL; use for example "
            f"sqlite:///studies/{paths.name}/study.db or postgresql+psycopg://user:password@host/db"
        ) from None
    return url


def open_storage(
    url: str, *, create: bool, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.RDBStorage:
    """Open an Optuna RDB storage; for the default SQLite file, ``create`` allows making its folder.

    With ``heartbeat_interval``, every running trial sends a heartbeat; a trial whose worker died (no heartbeat for
    ``grace_period`` seconds) is marked failed and queued again with the same parameters
    (``RetryHeartbeatStaleTrialCallback``).

    Raises:
        StudyError: the database cannot be reached or opened; the message hides the password.
    """
    parsed = make_url(url)
    engine_kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            if not create and not Path(database).exists():
                raise StudyError(
                    f"{redact_url(url)}: no such database file; run `hpo run` first, or check --study and --storage"
                )
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Several workers share one SQLite file: wait for the lock instead of failing with "database is locked".
        engine_kwargs["connect_args"] = {"timeout": 60}
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": retry,
        }
    try:
        storage = _create_rdb_storage(url, engine_kwargs, heartbeat)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            # Write-ahead logging lets readers (the dashboard, other workers) work while one worker writes.
            with storage.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            _sync_commits_at_checkpoints(storage.engine)
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        detail = str(exc).split("\n")[0]
        if parsed.password:
            detail = detail.replace(str(parsed.password), "***")
        raise StudyError(
            f"{redact_url(url)}: cannot open the study storage ({type(exc).__name__}: {detail}); check the URL, "
            "that the database server is running and that its driver is installed"
        ) from None


def _create_rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: dict[str, Any]
) -> optuna.storages.RDBStorage:
    """``RDBStorage(...)``, retried when processes opening a new database together (workers, or a dashboard or
    script reading the study while the first worker creates it) race to create its tables."""
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
            # SQLite says "table ... already exists" as an OperationalError; other OperationalErrors (a server that
            # cannot be reached, a file that cannot be opened) are not races and fail at once.
            racing = not isinstance(exc, sqlalchemy.exc.OperationalError) or "already exists" in str(exc)
            if attempt == 5 or not racing:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # another process is creating the same tables
    raise AssertionError("unreachable")


def _sync_commits_at_checkpoints(engine: sqlalchemy.engine.Engine) -> None:
    """``PRAGMA synchronous=NORMAL`` on every connection of a WAL-mode SQLite file.

    A trial makes some twenty small commits (one per suggested parameter, user attribute and reported value); with
    SQLite's default ``FULL`` each of them waits for an fsync. In WAL mode ``NORMAL`` is what SQLite recommends: the
    database stays consistent whatever happens, and a worker that is killed loses nothing it committed; only a power
    cut or kernel crash can lose the last commits before the next checkpoint (such a trial is re-run, like any trial
    of a dead worker).
    """

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener existed are closed; new ones get the pragma
