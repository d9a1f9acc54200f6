"""A lock held by one worker at a time from "is there budget left?" until its new trial exists in the storage.

Without it, two workers can both see one trial of budget left and both start one. It is the database's own lock
(``pg_advisory_lock`` on PostgreSQL) or a file lock beside the SQLite file, so it spans every worker that shares
the storage; other databases fall back to no lock, and the surplus trial is then failed instead of run.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = ["AskLock"]


class AskLock:
    """Exclusive lock over asking for a new trial in one study.

    Args:
        url: the SQLAlchemy URL of the study's storage.
        study_name: the study; each study has its own lock.
    """

    def __init__(self, url: str, study_name: str) -> None:
        parsed = make_url(url)
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
        """True when the lock really spans every worker (SQLite file or PostgreSQL); False for other databases."""
        return self._path is not None or self._backend == "postgresql"

    def acquire(self) -> None:
        """Block until this worker holds the lock."""
        if self._held:
            return
        if self._path is not None:
            self._file = open(self._path, "a+b")  # noqa: SIM115 - held open across acquire/release
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self._backend == "postgresql":
            assert self._engine is not None
            self._connection = self._engine.connect()
            self._connection.exec_driver_sql(f"SELECT pg_advisory_lock({self._key})")
        self._held = True

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
            try:
                self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({self._key})")
            finally:
                self._connection.close()
                self._connection = None
