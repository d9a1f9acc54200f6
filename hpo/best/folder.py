"""Replacing ``best/`` atomically: the promotion lock, fsynced writes, and one rename (a ``renameat2`` exchange)."""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from hpo.paths import StudyPaths

__all__ = ["best_lock", "replace_best", "write_best_files", "write_files"]


def _write_file(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)


@contextmanager
def best_lock(paths: StudyPaths) -> Iterator[None]:
    """Hold the study's ``best/`` lock (an ``flock`` shared by every worker on this host)."""
    paths.study_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_best_files(paths: StudyPaths, files: Mapping[str, bytes]) -> Path:
    """Replace ``best/`` by a folder holding ``files`` (name -> content, see :func:`best_files`).

    All files are written and fsynced in a temporary folder beside ``best/``, which then takes its place in one
    atomic rename (an exchange on Linux), so a reader sees the old set or the new set, never a mix or half a file.
    Call it with :func:`best_lock` held.
    """
    return replace_best(paths, lambda folder: write_files(folder, files))


def write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (name -> content) into the existing ``folder``, fsyncing each file and then the folder."""
    for name, content in files.items():
        _write_file(folder / name, content)
    _fsync_dir(folder)


def replace_best(paths: StudyPaths, fill: Callable[[Path], None]) -> Path:
    """Replace ``best/`` by a new folder that ``fill`` populates, in one atomic rename (see :func:`write_best_files`).

    ``fill`` receives an empty temporary folder beside ``best/`` and must leave its content durable (fsynced, as
    :func:`write_files` does, for sub-folders too). Call it with :func:`best_lock` held.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".best-new-", dir=paths.study_dir))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; best/ should be as readable as its siblings
    try:
        fill(tmp)
        _fsync_dir(tmp)
        if paths.best.exists() and _exchange(tmp, paths.best):
            pass  # tmp now holds the previous best/
        elif paths.best.exists():
            old = Path(tempfile.mkdtemp(prefix=".best-old-", dir=paths.study_dir))
            os.rename(paths.best, old / "best")
            os.rename(tmp, paths.best)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, paths.best)
        _fsync_dir(paths.study_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths.best
