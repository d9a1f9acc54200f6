"""Atomic writes: a file (or folder) is built beside its target, fsynced, and renamed over it in one step.

One permission rule for everything hpo writes: what the process umask gives an ordinary new file (``0o666``) or
folder (``0o777``); the temporary names that ``tempfile`` creates privately are widened to that before the rename.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_output", "fsync_dir", "ordinary_mode", "write_atomic", "write_durably"]


def ordinary_mode(folder: bool = False) -> int:
    """The permission bits a new file (or folder) gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new or renamed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a new ``path`` and fsync it (for files inside a folder that is renamed into place)."""
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


@contextmanager
def atomic_output(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Open a hidden temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace ``path`` by ``content`` atomically (text is written as UTF-8)."""
    if isinstance(content, str):
        with atomic_output(path, "w", encoding="utf-8") as handle:
            handle.write(content)
    else:
        with atomic_output(path, "wb") as handle:
            handle.write(content)
