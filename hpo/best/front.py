"""The Pareto front of a multi-objective study on disk: ``best/trial_NNNN/`` per Pareto-optimal trial and
``best/front.json``, kept in step with the front and replaced as one atomic set."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpo.best.folder import best_lock, replace_best, write_files
from hpo.best.format import CARD_FILE
from hpo.config.objectives import ObjectiveSpec
from hpo.errors import StudyError, WeightsError
from hpo.paths import FRONT_FILE, StudyPaths

__all__ = [
    "FRONT_FILE",
    "FRONT_FORMAT",
    "FrontEntry",
    "front_folders",
    "promote_front_files",
    "read_front",
    "trial_folder",
]

FRONT_FORMAT = "hpo.views.front_summary/1"
_FOLDER = re.compile(r"^trial_(\d{4,})$")


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
        match = _FOLDER.fullmatch(child.name)
        if match and (child / CARD_FILE).is_file():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def read_front(best: Path) -> list[FrontEntry] | None:
    """The entries of ``best/front.json``, or None when ``best`` holds no front (a single-objective ``best/``).

    Raises:
        WeightsError: the file exists but is damaged.
    """
    path = best / FRONT_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [FrontEntry(int(t["trial"]), dict(t["values"]), t.get("folder")) for t in doc["trials"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
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
    """Copy a trial folder into the new ``best/`` as hard links (its files are never changed in place)."""
    target.mkdir()
    for item in source.iterdir():
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
