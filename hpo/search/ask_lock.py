"""A lock held by one worker at a time from "is there budget left?" until its new trial exists in the storage.

Without it, two workers can both see one trial of budget left and both start one. It is the database's own lock
(``pg_advisory_lock`` on PostgreSQL) or a file lock beside the SQLite file, so it spans every worker that shares
the storage; other databases fall back to no lock, and the surplus trial is then failed instead of run.

A PostgreSQL lock lives as long as its connection: a server restart releases it. Taking it is retried like any
storage call while the server is away, and a lock lost that way is reported by :attr:`AskLock.lost` (another worker
may have counted the budget meanwhile), never by an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hpo.study.retry import StorageUnavailableError, retry_transient, storage_retry_seconds, transient_cause
from hpo.study.storage import describe_storage_error, redact_url

__all__ = ["AskLock"]


class AskLock:
    """Exclusive lock over asking for a new trial in one study.

    Args:
        url: the SQLAlchemy URL of the study's storage.
        study_name: the study; each study has its own lock.
        retry_seconds: how long to retry taking a PostgreSQL lock while the server cannot be reached (default
            ``$HPO_STORAGE_RETRY``, else 60).
    """

    def __init__(self, url: str, study_name: str, retry_seconds: float | None = None) -> None:
        parsed = make_url(url)
        self._url = url
        self._retry_seconds = storage_retry_seconds() if retry_seconds is None else retry_seconds
        self._lost = False
        self._backend = parsed.get_backend_name()
        self._engine = create_engine(url, poolclass=NullPool) if self._backend == "postgresql" else None
        self._file: IO[bytes] | None = None
        self._connection: Any = None
        self._held = False
        self._key = int.from_bytes(hashlib.sha256(f"hpo-ask:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._path: Path | None = None
        if self._backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._path = Path(f"{parsed.database}.{study_name}.ask.lock")

    @property
    def exclusive(self) -> bool:
        """True when the lock really spans every worker (SQLite file or PostgreSQL) and the last hold was not
        :attr:`lost`; False for other databases."""
        return (self._path is not None or self._backend == "postgresql") and not self._lost

    @property
    def lost(self) -> bool:
        """True when the connection holding the last PostgreSQL lock dropped before :meth:`release` (a server
        restart): the server released the lock then, so another worker may have asked at the same time."""
        return self._lost

    def acquire(self) -> None:
        """Block until this worker holds the lock.

        Raises:
            StorageUnavailableError: the PostgreSQL server stayed unreachable for the retry time.
        """
        if self._held:
            return
        self._lost = False
        if self._path is not None:
            self._file = open(self._path, "a+b")  # noqa: SIM115 - held open across acquire/release
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self._backend == "postgresql":
            self._connection, _ = retry_transient(
                self._lock_on_server, seconds=self._retry_seconds, backend="postgresql", give_up=self._give_up
            )
        self._held = True

    def _lock_on_server(self) -> Any:
        """A new connection holding the advisory lock (waiting for it while another worker holds it)."""
        assert self._engine is not None
        connection = self._engine.connect()
        try:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({self._key})")
        except Exception:
            _close_quietly(connection)
            raise
        return connection

    def _give_up(self, cause: BaseException, waited: float) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"{redact_url(self._url)}: cannot take the study's ask lock: the database server has not answered for "
            f"{waited:.0f} s ({describe_storage_error(cause, self._url)}). Check that it is running and reachable "
            "from this host, then rerun the same command; to wait longer, pass --storage-retry SECONDS to hpo run "
            f"or set $HPO_STORAGE_RETRY (now {self._retry_seconds:g} s)."
        )

    def release(self) -> None:
        """Let the next worker ask; does nothing when not held."""
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                # False: this session no longer held it (it is a new session after a reconnection).
                self._lost = not connection.exec_driver_sql(f"SELECT pg_advisory_unlock({self._key})").scalar()
            except Exception as exc:
                if transient_cause(exc, "postgresql") is None:
                    raise
                self._lost = True  # the connection died, and the server released the lock with it
            finally:
                _close_quietly(connection)


def _close_quietly(connection: Any) -> None:
    """Close a connection that may already be dead: its server-side session, and any lock it held, are gone then,
    so there is nothing left to clean up and no error worth reporting."""
    with contextlib.suppress(Exception):
        connection.close()
