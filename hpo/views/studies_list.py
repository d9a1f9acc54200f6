"""What ``hpo studies`` shows: a one-line overview of every study under a root folder or in one storage."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc

from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.access import best_trial, trials_by_state
from hpo.study.storage import STORAGE_ENV, check_storage_url, open_storage, redact_url

__all__ = ["StudyOverview", "list_studies"]


@dataclass(frozen=True)
class StudyOverview:
    """What ``hpo studies`` shows for one study."""

    name: str
    storage: str
    direction: str
    metric: str | None
    trials: dict[str, int]
    best_trial: int | None
    best_value: float | None
    last_update: dt.datetime | None
    pareto_front: int | None = None  # multi-objective studies: the number of Pareto-optimal feasible trials
    error: str | None = None  # why the study (or its whole database) cannot be read; the other fields are then empty

    @classmethod
    def unreadable(cls, name: str, storage: str, error: str) -> StudyOverview:
        """The row of a study, or of a whole database file, that cannot be read, saying why."""
        return cls(name, storage, "", None, {}, None, None, None, error=error)

    def to_json(self) -> dict[str, Any]:
        """The overview as printed by ``hpo studies --json`` (``trials`` is the total of ``trials_by_state``;
        ``error`` is null, or why this study cannot be read)."""
        return {
            "name": self.name,
            "storage": self.storage,
            "direction": self.direction or None,
            "metric": self.metric,
            "trials": sum(self.trials.values()),
            "trials_by_state": self.trials,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "last_update": self.last_update.isoformat(timespec="seconds") if self.last_update else None,
            **({"pareto_front": self.pareto_front} if self.pareto_front is not None else {}),
            "error": self.error,
        }


def list_studies(*, root: Path = Path("studies"), storage: str | None = None) -> list[StudyOverview]:
    """Every study in ``storage`` (default ``$HPO_STORAGE``), else in the ``<root>/<study>/study.db`` files.

    A study, or a database file under ``root``, that cannot be read (damaged, not an Optuna storage, written by
    another Optuna version) does not hide the others: it is listed with :attr:`StudyOverview.error` saying why.

    Args:
        root: the folder holding one folder per study; read when no storage URL is given.
        storage: a SQLAlchemy URL whose studies are listed instead of those under ``root``.

    Returns:
        The studies sorted by name (then storage), each with its trials counted by state.

    Raises:
        StudyError: the root folder cannot be read, or the storage URL is malformed or cannot be opened.
    """
    url = storage or os.environ.get(STORAGE_ENV) or None
    if url is not None:
        check_storage_url(url, "--storage" if storage else f"${STORAGE_ENV}")
        return sorted(_studies_in(url), key=lambda o: (o.name, o.storage))
    try:
        folders = sorted(folder for folder in root.iterdir() if _has_database(folder))
    except FileNotFoundError:
        raise StudyError(
            f"{root}: no such folder; run `hpo run` first, or pass --root with the folder holding your studies "
            "(or --storage with their database)"
        ) from None
    except OSError as exc:
        raise StudyError(
            f"{root}: cannot be listed ({exc.strerror or exc}); pass --root with a readable folder"
        ) from None
    overviews = []
    for folder in folders:
        each = StudyPaths(root, folder.name).default_storage_url
        try:
            overviews += _studies_in(each)
        except StudyError as exc:
            overviews.append(StudyOverview.unreadable(folder.name, redact_url(each), str(exc)))
    return sorted(overviews, key=lambda o: (o.name, o.storage))


def _has_database(folder: Path) -> bool:
    """True when ``folder`` holds a ``study.db``; a folder hpo may not look into is listed as unreadable."""
    try:
        return (folder / "study.db").is_file()
    except OSError:
        return True


def _studies_in(url: str) -> list[StudyOverview]:
    """The studies of one storage; one that cannot be read is listed with the reason.

    Raises:
        StudyError: the storage cannot be opened, or does not say which studies it holds.
    """
    rdb = open_storage(url, create=False)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=rdb, include_best_trial=False)]
    except _READ_ERRORS as exc:
        raise StudyError(
            f"{redact_url(url)}: cannot read the studies in this storage ({_reason(exc)}); {_HINT}"
        ) from None
    overviews = []
    for name in names:
        try:
            overviews.append(_overview(optuna.load_study(study_name=name, storage=rdb), url))
        except _READ_ERRORS as exc:
            overviews.append(
                StudyOverview.unreadable(
                    name, redact_url(url), f"{redact_url(url)}: cannot read study {name!r} ({_reason(exc)}); {_HINT}"
                )
            )
    return overviews


#: What a damaged database, or one that is not an Optuna storage, raises while it is read.
_READ_ERRORS = (sqlalchemy.exc.SQLAlchemyError, ValueError, KeyError, TypeError, RuntimeError)
_HINT = "check that it is an Optuna storage, not damaged, and that no other program is rewriting it"


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _overview(study: optuna.Study, url: str) -> StudyOverview:
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    front = len(study.best_trials) if len(study.directions) > 1 else None
    stamps = [t.datetime_complete or t.datetime_start for t in trials]
    known = [s for s in stamps if s is not None]
    return StudyOverview(
        name=study.study_name,
        storage=redact_url(url),
        direction=", ".join(d.name.lower() for d in study.directions),
        metric=study.user_attrs.get("metric"),
        trials=trials_by_state(study),
        best_trial=best.number if best else None,
        best_value=float(best.value) if best and best.value is not None else None,
        last_update=max(known) if known else None,
        pareto_front=front,
    )
