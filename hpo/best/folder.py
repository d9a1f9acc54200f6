"""``best/``, the study's main output, on disk: its file names and formats, ``model.json``, and how it is replaced.

The only module that writes ``best/``. A single-objective study's ``best/`` holds one model: ``model.pt`` (the
``state_dict``), ``model.json`` (the card describing it, with the weights' sha256), ``calibration.json`` and
``reliability.png``. A multi-objective study's ``best/`` holds ``front.json`` and one such folder per Pareto-optimal
trial (``best/trial_0007/``). Either way the whole set is built beside ``best/`` and swapped in with one atomic
rename, under a lock shared by every worker on the host, so a reader sees the old set or the new one, never a mix.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.atomic import fsync_dir, ordinary_mode, write_durably
from hpo.errors import StudyError, WeightsError
from hpo.paths import StudyPaths

if TYPE_CHECKING:
    from hpo.config.objectives import ObjectiveSpec

__all__ = [
    "CALIBRATION_FILE",
    "CARD_FILE",
    "ENSEMBLE_DIR",
    "FORMAT",
    "FRONT_FILE",
    "FRONT_FORMAT",
    "MAX_FILE_BYTES_ENV",
    "MODEL_FILE",
    "RELIABILITY_FILE",
    "FrontEntry",
    "best_files",
    "front_folders",
    "promote_best_files",
    "promote_front_files",
    "read_card",
    "read_file_capped",
    "read_front",
    "remove_leftovers",
    "trial_folder",
    "update_best",
    "update_card",
    "write_best_files",
]

#: ``format`` of ``model.json``.
FORMAT = "hpo.model/1"
#: ``format`` of ``front.json``.
FRONT_FORMAT = "hpo.front/1"
MODEL_FILE = "model.pt"
CARD_FILE = "model.json"
CALIBRATION_FILE = "calibration.json"
RELIABILITY_FILE = "reliability.png"
#: The list of a Pareto front; its presence marks ``best/`` as a front rather than one model.
FRONT_FILE = "front.json"
#: ``best/ensemble/``: the ensemble of the best trials (``model.json`` describing it, one ``member_NNNN/`` each).
ENSEMBLE_DIR = "ensemble"
_TRIAL_FOLDER = re.compile(r"^trial_(\d{4,})$")


# --- one model: model.pt + model.json -------------------------------------------------------------------------------


def best_files(state_dict: dict[str, Any], card: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of ``model.pt`` and of ``model.json`` (``card`` with the weights' file, sha256 and size added)."""
    import torch  # only writing weights needs it: reading cards (hpo best, hpo studies) stays light

    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    payload = buffer.getvalue()
    card = {
        "format": FORMAT,
        **card,
        "weights": {"file": MODEL_FILE, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)},
    }
    return {MODEL_FILE: payload, CARD_FILE: (json.dumps(card, indent=2, allow_nan=False) + "\n").encode()}


def read_card(folder: Path) -> dict[str, Any]:
    """Read and check the ``model.json`` of a weights folder."""
    path = folder / CARD_FILE
    if not path.exists() and (folder / FRONT_FILE).is_file():
        raise WeightsError(
            f"{folder}: holds the Pareto front of a multi-objective study (front.json and one trial_NNNN folder per "
            f"model), not one model; pick one: {folder}/trial_NNNN, `hpo predict --study STUDY --trial N`, or "
            "hpo.load_best(study, trial=N) (`hpo best --study STUDY` lists them)"
        )
    try:
        card = json.loads(read_file_capped(path, "model description").decode("utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{path}: not found; {folder} is not a folder written by hpo (it needs model.json)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{path}: cannot be read as JSON ({exc}); it is damaged, rerun the study") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise WeightsError(f"{path}: is not an hpo model description (format {FORMAT!r} expected)")
    return card


#: Environment variable that caps the bytes read from one file that hpo reads whole (``model.json``,
#: ``front.json``, ``reliability.png``; search-space files too, see :mod:`hpo.config.yaml_doc`).
MAX_FILE_BYTES_ENV = "HPO_MAX_FILE_BYTES"
#: The cap when ``$HPO_MAX_FILE_BYTES`` is not set: a real ``model.json`` is kilobytes, a few MiB with thousands of
#: one-hot levels.
DEFAULT_MAX_FILE_BYTES = 64 << 20


def read_file_capped(path: Path, what: str) -> bytes:
    """The bytes of the regular file ``path`` (a ``what``), read only up to ``$HPO_MAX_FILE_BYTES`` (default 64 MiB).

    A named pipe or a device (``/dev/zero``) is refused before it is opened, since reading one may block forever or
    never end; the file is then opened without blocking and checked again, so it cannot be swapped in between.

    Raises:
        FileNotFoundError: there is no such file (callers say what that means).
        WeightsError: it is not a regular file, is larger than the cap, cannot be read, or the cap is not a number.
    """
    limit = _max_file_bytes()
    try:
        _refuse_unless_regular(path, os.stat(path).st_mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise WeightsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        _refuse_unless_regular(path, status.st_mode, what)
        try:
            payload = handle.read(limit + 1) if status.st_size <= limit else b""
        except OSError as exc:
            raise WeightsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if status.st_size > limit or len(payload) > limit:
        size = f"{status.st_size} bytes" if status.st_size > limit else f"over {limit} bytes"
        raise WeightsError(
            f"{path}: is {size}, more than the {limit} bytes hpo reads from a {what} (${MAX_FILE_BYTES_ENV} sets the "
            "limit); it was not written by hpo as it is, so rerun the study or restore the file"
        )
    return payload


def _max_file_bytes() -> int:
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_FILE_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise WeightsError(f"${MAX_FILE_BYTES_ENV}: must be a whole number of bytes >= 1, got {raw!r}")
    return int(raw)


def _refuse_unless_regular(path: Path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise WeightsError(
            f"{path}: is {kind}, not the regular file hpo writes for a {what}; it was replaced, so rerun the study or "
            "restore the file"
        )


def promote_best_files(
    paths: StudyPaths, trial_number: int, is_best: Any, files: Callable[[], Mapping[str, bytes]]
) -> bool:
    """Replace ``best/`` by ``files()`` (name -> content) if trial ``trial_number`` is the best once the lock is held.

    ``is_best`` is called under the lock with the trial number (True: the storage says it is the best trial);
    ``files`` only when it is.

    Raises:
        StudyError: the folder cannot be written (disk full, read-only); ``best/`` keeps its previous content.
    """
    try:
        with best_lock(paths):
            if not is_best(trial_number):
                return False
            write_best_files(paths, files())
            return True
    except OSError as exc:
        previous = "nothing"
        if (paths.best / CARD_FILE).exists():
            previous = f"trial {read_card(paths.best).get('trial')}"
        raise StudyError(
            f"{paths.study_dir}: cannot write the best weights of trial {trial_number} "
            f"({exc.strerror or exc}); best/ is unchanged and still holds {previous}, and the trial stays recorded "
            "as complete in the storage, but its weights are lost. Free disk space or make the folder writable, "
            "then rerun the same command to finish the budget."
        ) from None


# --- replacing best/ atomically ------------------------------------------------------------------------------------


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
        write_durably(folder / name, content)
    fsync_dir(folder)


def replace_best(paths: StudyPaths, fill: Callable[[Path], None]) -> Path:
    """Replace ``best/`` by a new folder that ``fill`` populates, in one atomic rename (see :func:`write_best_files`).

    ``fill`` receives an empty temporary folder beside ``best/`` and must leave its content durable (fsynced, as
    :func:`write_files` does, for sub-folders too). Call it with :func:`best_lock` held.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".best-new-", dir=paths.study_dir))
    os.chmod(tmp, ordinary_mode(folder=True))  # mkdtemp makes it private; best/ should be as readable as its siblings
    try:
        fill(tmp)
        fsync_dir(tmp)
        if paths.best.exists() and _exchange(tmp, paths.best):
            pass  # tmp now holds the previous best/
        elif paths.best.exists():
            old = Path(tempfile.mkdtemp(prefix=".best-old-", dir=paths.study_dir))
            os.rename(paths.best, old / "best")
            os.rename(tmp, paths.best)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, paths.best)
        fsync_dir(paths.study_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths.best


# --- a Pareto front: front.json + trial_NNNN/ per Pareto-optimal trial --------------------------------------------


def trial_folder(number: int) -> str:
    """The folder of a Pareto-optimal trial under ``best/``: ``trial_0007``."""
    return f"trial_{number:04d}"


@dataclass(frozen=True)
class FrontEntry:
    """One Pareto-optimal trial as ``best/front.json`` lists it: its objective values and its folder (``None``:
    its weights were written on another host sharing the storage)."""

    trial: int
    values: dict[str, float]
    folder: str | None


def front_folders(best: Path) -> dict[int, Path]:
    """Trial number -> folder, for every ``trial_NNNN`` folder under ``best`` that holds a ``model.json``."""
    if not best.is_dir():
        return {}
    found = {}
    for child in best.iterdir():
        match = _TRIAL_FOLDER.fullmatch(child.name)
        if match and (child / CARD_FILE).is_file():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def read_front(best: Path) -> list[FrontEntry] | None:
    """The entries of ``best/front.json``, or None when ``best`` holds no front (a single-objective ``best/``).

    Raises:
        WeightsError: the file exists but is damaged.
    """
    path = best / FRONT_FILE
    try:
        doc = json.loads(read_file_capped(path, "Pareto front list").decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        raise WeightsError(f"{path}: cannot be read ({exc}); it is damaged, rerun the study to rewrite it") from None
    try:
        return [FrontEntry(int(t["trial"]), dict(t["values"]), t.get("folder")) for t in doc["trials"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: cannot be read ({exc}); it is damaged, rerun the study to rewrite it") from None


def _front_document(
    study: str, objectives: Sequence[ObjectiveSpec], constraints: Sequence[str], front: Sequence[FrontEntry]
) -> bytes:
    doc = {
        "format": FRONT_FORMAT,
        "study": study,
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in objectives],
        "constraints": list(constraints),
        "trials": [{"trial": e.trial, "values": e.values, "folder": e.folder} for e in front],
    }
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode()


def _link_tree(source: Path, target: Path) -> None:
    """Copy a folder into the new ``best/`` as hard links (its files are never changed in place), sub-folders too."""
    target.mkdir()
    for item in source.iterdir():
        if item.is_dir():
            _link_tree(item, target / item.name)
            continue
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)
    fsync_dir(target)


def promote_front_files(
    paths: StudyPaths,
    trial_number: int,
    front: Callable[[], Sequence[tuple[int, Sequence[float]]]],
    files: Callable[[], Mapping[str, bytes]],
    objectives: Sequence[ObjectiveSpec],
    constraints: Sequence[str] = (),
) -> bool:
    """Bring ``best/`` in step with the Pareto front, with the study's ``best/`` lock held.

    ``front()`` is read under the lock: (trial number, objective values) of every Pareto-optimal feasible trial as
    the storage has it now. Afterwards ``best/`` holds a ``trial_NNNN/`` folder for each of them whose weights are
    on this host (``files()`` gives trial ``trial_number``'s, built only if it is on the front), no folder for a
    trial that left the front, and ``front.json`` listing the front. The new set is built beside ``best/`` (kept
    folders as hard links) and replaces it in one atomic rename, so readers never see a half-written state.

    Returns:
        True when ``best/`` now holds a folder for ``trial_number``.

    Raises:
        StudyError: the folder cannot be written (disk full, read-only); ``best/`` keeps its previous content.
    """
    try:
        with best_lock(paths):
            members = list(front())
            present = front_folders(paths.best)
            numbers = {number for number, _ in members}
            mine = trial_number in numbers
            entries = [
                FrontEntry(
                    number,
                    {o.metric: float(v) for o, v in zip(objectives, values, strict=True)},
                    trial_folder(number) if number in present or number == trial_number else None,
                )
                for number, values in sorted(members)
            ]
            document = _front_document(paths.name, objectives, constraints, entries)
            kept = {n: folder for n, folder in present.items() if n in numbers and n != trial_number}
            unchanged = (
                not mine
                and set(kept) == set(present)
                and (paths.best / FRONT_FILE).is_file()
                and (paths.best / FRONT_FILE).read_bytes() == document
            )
            if unchanged:
                return False
            new_files = files() if mine else None

            def fill(folder: Path) -> None:
                for number, source in kept.items():
                    _link_tree(source, folder / trial_folder(number))
                if new_files is not None:
                    (folder / trial_folder(trial_number)).mkdir()
                    write_files(folder / trial_folder(trial_number), new_files)
                write_files(folder, {FRONT_FILE: document})

            replace_best(paths, fill)
            return mine
    except OSError as exc:
        raise StudyError(
            f"{paths.study_dir}: cannot write the Pareto front's weights after trial {trial_number} "
            f"({exc.strerror or exc}); best/ is unchanged, and the trial stays recorded as complete in the storage, "
            "but its weights are lost. Free disk space or make the folder writable, then rerun the same command to "
            "finish the budget."
        ) from None


def update_card(paths: StudyPaths, trial: int, entries: Mapping[str, Any]) -> bool:
    """Add ``entries`` to ``best/model.json`` if it still holds ``trial`` (see :func:`update_best`)."""
    return update_best(paths, trial, entries=entries)


def update_best(
    paths: StudyPaths,
    trial: int,
    *,
    entries: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    folders: Mapping[str, Mapping[str, bytes]] | None = None,
) -> bool:
    """Change ``best/`` if it still holds ``trial``: replace some of its ``files`` (name -> content), add ``entries``
    to its ``model.json``, and replace whole sub-``folders`` (relative path -> files, such as ``ensemble``). What is not
    replaced is kept (as hard links); the new set replaces ``best/`` in one atomic rename, under the ``best/`` lock.

    Returns:
        False when ``best/`` holds another trial (or none) by now: nothing was written.

    Raises:
        OSError: the folder cannot be written.
    """
    files = dict(files or {})
    folders = dict(folders or {})
    with best_lock(paths):
        if not (paths.best / CARD_FILE).is_file() or read_card(paths.best).get("trial") != trial:
            return False
        if entries:
            base = json.loads(files[CARD_FILE]) if CARD_FILE in files else read_card(paths.best)
            files[CARD_FILE] = (json.dumps({**base, **entries}, indent=2, allow_nan=False) + "\n").encode()
        replaced_tops = {name.split("/")[0] for name in folders}
        source = paths.best

        def fill(folder: Path) -> None:
            for item in source.iterdir():
                if item.name in files or item.name in replaced_tops:
                    continue
                if item.is_dir():
                    _link_tree(item, folder / item.name)
                else:
                    try:
                        os.link(item, folder / item.name)
                    except OSError:
                        shutil.copy2(item, folder / item.name)
            for relative in sorted(folders):
                (folder / relative).mkdir(parents=True, exist_ok=True)
                write_files(folder / relative, folders[relative])
            write_files(folder, files)

        replace_best(paths, fill)
        return True


def remove_leftovers(paths: StudyPaths) -> list[str]:
    """Remove the temporary folders a killed promotion left beside ``best/`` (``.best-new-*``, ``.best-old-*``),
    under the ``best/`` lock (so none of them belongs to a promotion in progress); returns their names."""
    if not paths.study_dir.is_dir():
        return []
    with best_lock(paths):
        removed = []
        for item in paths.study_dir.iterdir():
            if item.is_dir() and item.name.startswith((".best-new-", ".best-old-")):
                shutil.rmtree(item, ignore_errors=True)
                removed.append(item.name)
        return removed
