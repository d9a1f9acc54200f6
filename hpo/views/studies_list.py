"""What ``hpo studies`` shows: a one-line overview of every study under a root folder or in one storage."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.access import best_trial, trials_by_state
from hpo.study.storage import STORAGE_ENV, open_storage, redact_url

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

    def to_json(self) -> dict[str, Any]:
        """The overview as printed by ``hpo studies --json`` (``trials`` is the total of ``trials_by_state``)."""
        return {
            "name": self.name,
            "storage": self.storage,
            "direction": self.direction,
            "metric": self.metric,
            "trials": sum(self.trials.values()),
            "trials_by_state": self.trials,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "last_update": self.last_update.isoformat(timespec="seconds") if self.last_update else None,
            **({"pareto_front": self.pareto_front} if self.pareto_front is not None else {}),
        }


def list_studies(*, root: Path = Path("studies"), storage: str | None = None) -> list[StudyOverview]:
    """Every study in ``storage`` (default ``$HPO_STORAGE``), else in the ``<root>/<study>/study.db`` files.

    Args:
        root: the folder holding one folder per study; read when no storage URL is given.
        storage: a SQLAlchemy URL whose studies are listed instead of those under ``root``.

    Returns:
        The studies sorted by name (then storage), each with its trials counted by state.

    Raises:
        StudyError: the root folder or the storage cannot be read.
    """
    url = storage or os.environ.get(STORAGE_ENV) or None
    if url is not None:
        try:
            make_url(url)
        except sqlalchemy.exc.ArgumentError:
            raise StudyError(
                f"--storage: {redact_url(url)!r} is not a SQLAlchemy URL; use for example "
                "sqlite:///studies/default/study.db or postgresql+psycopg://user:password@host/db"
            ) from None
        urls = [url]
    else:
        if not root.is_dir():
            raise StudyError(
                f"{root}: no such folder; run `hpo run` first, or pass --root with the folder holding your studies "
                "(or --storage with their database)"
            )
        urls = [
            StudyPaths(root, folder.name).default_storage_url
            for folder in sorted(root.iterdir())
            if (folder / "study.db").is_file()
        ]
    overviews = [overview for each in urls for overview in _studies_in(each)]
    return sorted(overviews, key=lambda o: (o.name, o.storage))


def _studies_in(url: str) -> list[StudyOverview]:
    rdb = open_storage(url, create=False)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=rdb, include_best_trial=False)]
        return [_overview(optuna.load_study(study_name=name, storage=rdb), url) for name in names]
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StudyError(
            f"{redact_url(url)}: cannot read the studies in this storage ({type(exc).__name__}); check that it is an "
            "Optuna storage that no other program is rewriting"
        ) from None


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
