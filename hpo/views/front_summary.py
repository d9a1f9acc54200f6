"""What ``hpo best`` shows: the best trial of a study, or the Pareto front of a multi-objective one, checked against
the weights folders in ``best/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.best.front import front_folders
from hpo.config.constraints import feasible
from hpo.errors import StudyError
from hpo.study.access import load_study
from hpo.study.storage import redact_url
from hpo.views.best_summary import BestSummary, best_summary

__all__ = ["FrontRow", "FrontSummary", "describe_front", "describe_study"]


@dataclass(frozen=True)
class FrontRow:
    """One Pareto-optimal trial: its objective values, constraints, and where its weights are."""

    trial: int
    values: dict[str, float]
    constraints: dict[str, float]
    folder: Path | None  # None: its weights are not under this root (written on the host that ran it)
    worker: str | None

    @property
    def feasible(self) -> bool:
        return feasible(self.constraints)

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "values": self.values,
            "feasible": self.feasible,
            "constraints": self.constraints,
            "folder": str(self.folder) if self.folder else None,
            "worker": self.worker,
        }


@dataclass(frozen=True)
class FrontSummary:
    """The Pareto front of a multi-objective study as its storage records it (feasible trials only)."""

    study: str
    storage: str
    objectives: list[tuple[str, str]]  # (metric, direction)
    constraints: list[str]
    states: dict[str, int]
    rows: list[FrontRow]

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "objectives": [{"metric": m, "direction": d} for m, d in self.objectives],
            "constraints": self.constraints,
            "trials_by_state": self.states,
            "pareto_front": [row.to_json() for row in self.rows],
        }


def describe_front(name: str, *, root: Path = Path("studies"), storage: str | None = None) -> FrontSummary:
    """Read the Pareto front of multi-objective study ``name`` and find each trial's folder under ``best/``.

    Raises:
        StudyError: no such study, or a single-objective one (see :func:`hpo.views.best_summary.describe_best`).
    """
    summary = describe_study(name, root=root, storage=storage)
    if not isinstance(summary, FrontSummary):
        raise StudyError(f"study {name!r} has one objective: it has a best trial, not a front; use describe_best")
    return summary


def describe_study(
    name: str, *, root: Path = Path("studies"), storage: str | None = None
) -> BestSummary | FrontSummary:
    """The :class:`~hpo.views.best_summary.BestSummary` of a single-objective study, or the :class:`FrontSummary` of a
    multi-objective one.

    Raises:
        StudyError: no such study, or (single objective) no feasible completed trial yet.
    """
    study, paths, url = load_study(name, root, storage)
    if len(study.directions) == 1:
        return best_summary(study, paths, url)
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    metrics = study.user_attrs.get("objectives") or [f"objective {i}" for i in range(len(study.directions))]
    folders = front_folders(paths.best)
    rows = [
        FrontRow(
            t.number,
            dict(zip(metrics, (float(v) for v in t.values), strict=True)),
            dict(t.constraints),
            folders.get(t.number),
            t.user_attrs.get("worker"),
        )
        for t in sorted(study.best_trials, key=lambda t: t.number)
    ]
    return FrontSummary(
        name,
        redact_url(url),
        [(m, d.name.lower()) for m, d in zip(metrics, study.directions, strict=True)],
        list(study.user_attrs.get("constraints") or []),
        states,
        rows,
    )
