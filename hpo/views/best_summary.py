"""What ``hpo best`` shows: the best trial of a study (or the Pareto front of a multi-objective one) as its storage
records it, checked against the weights in ``best/``, with the temperature and threshold saved there."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from hpo.best.folder import front_folders, read_card
from hpo.config.constraints import feasible
from hpo.errors import StudyError
from hpo.inference.threshold import ThresholdChoice
from hpo.paths import StudyPaths
from hpo.study.access import best_trial, is_constrained, load_study, trials_by_state
from hpo.study.storage import redact_url

__all__ = [
    "BestSummary",
    "FrontRow",
    "FrontSummary",
    "SavedInference",
    "best_summary",
    "describe_best",
    "describe_front",
    "describe_study",
    "read_saved_inference",
]


@dataclass(frozen=True)
class BestSummary:
    """The best trial of a study as the storage records it, and where its weights are."""

    study: str
    storage: str
    direction: str
    metric: str | None
    trial: int
    value: float
    params: dict[str, Any]
    metrics: dict[str, float]
    states: dict[str, int]
    weights_dir: Path | None
    weights_status: str
    worker: str | None = None  # "host:pid" that ran the best trial
    #: The study's constraints and how far the best trial is from each bound (``<= 0``: met); empty without any.
    constraints: dict[str, float] = field(default_factory=dict)
    #: What the value is: "validation split" or "mean of K CV folds".
    measured_on: str = "validation split"
    #: From ``best/model.json`` (when it holds this trial): its test-split scores, the ensemble's, and the refit.
    test: dict[str, Any] | None = None
    ensemble_test: dict[str, Any] | None = None
    ensemble: dict[str, Any] | None = None
    refit: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "direction": self.direction,
            "metric": self.metric,
            "trial": self.trial,
            "value": self.value,
            "params": self.params,
            "metrics": self.metrics,
            "trials_by_state": self.states,
            "weights_dir": str(self.weights_dir) if self.weights_dir else None,
            "weights_status": self.weights_status,
            "worker": self.worker,
            "constraints": self.constraints,
            "measured_on": self.measured_on,
            "test": self.test,
            "ensemble_test": self.ensemble_test,
            "ensemble": self.ensemble,
            "refit": self.refit,
        }


def describe_best(name: str, *, root: Path = Path("studies"), storage: str | None = None) -> BestSummary:
    """Read the best trial of study ``name`` from its storage and check ``best/`` against it.

    ``weights_status`` is ``ok`` when ``best/model.json`` names that trial, ``missing`` when there is no ``best/``
    here, or ``stale`` when it names another trial (its weights were written on another host sharing the storage).

    Raises:
        StudyError: no such study, no feasible completed trial yet, or a multi-objective study (see
            :func:`describe_front`).
    """
    study, paths, url = load_study(name, root, storage)
    return best_summary(study, paths, url)


def best_summary(study: optuna.Study, paths: StudyPaths, url: str) -> BestSummary:
    """The :class:`BestSummary` of an open single-objective study (see :func:`describe_best`).

    Raises:
        StudyError: no feasible completed trial yet, or a multi-objective study.
    """
    name = study.study_name
    if len(study.directions) > 1:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has {len(study.directions)} objectives: it has a Pareto front "
            "rather than one best trial; use hpo.views.front_summary.describe_front (what `hpo best` shows)"
        )
    best = best_trial(study)
    states = trials_by_state(study)
    if best is None:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has no {'feasible ' if is_constrained(study) else ''}completed "
            f"trial yet ({states or 'no trials'}); run `hpo run` until one completes"
            + (" that satisfies the study's constraints" if is_constrained(study) else "")
        )
    status, folder, card = "missing", None, {}
    if paths.best.exists():
        card = read_card(paths.best)
        folder = paths.best
        status = "ok" if card.get("trial") == best.number else "stale"
    folds = (card.get("data") or {}).get("cv_folds") if status == "ok" else None
    if folds is None and "cv_values" in best.user_attrs:
        folds = len(best.user_attrs["cv_values"])
    saved = card if status == "ok" else {}
    return BestSummary(
        study=name,
        storage=redact_url(url),
        direction=study.direction.name.lower(),
        metric=study.user_attrs.get("metric"),
        trial=best.number,
        value=float(best.value) if best.value is not None else float("nan"),
        params=dict(best.user_attrs.get("params", best.params)),
        metrics=dict(best.user_attrs.get("metrics", {})),
        states=states,
        weights_dir=folder,
        weights_status=status,
        worker=best.user_attrs.get("worker"),
        constraints={
            text: float(best.constraints.get(text, math.inf)) for text in study.user_attrs.get("constraints") or []
        },
        measured_on=f"mean of {folds} CV folds" if folds else "validation split",
        test=saved.get("test"),
        ensemble_test=saved.get("ensemble_test"),
        ensemble=saved.get("ensemble"),
        refit=saved.get("refit"),
    )


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
        StudyError: no such study, or a single-objective one (see :func:`describe_best`).
    """
    summary = describe_study(name, root=root, storage=storage)
    if not isinstance(summary, FrontSummary):
        raise StudyError(f"study {name!r} has one objective: it has a best trial, not a front; use describe_best")
    return summary


def describe_study(
    name: str, *, root: Path = Path("studies"), storage: str | None = None
) -> BestSummary | FrontSummary:
    """The :class:`BestSummary` of a single-objective study, or the :class:`FrontSummary` of a
    multi-objective one.

    Raises:
        StudyError: no such study, or (single objective) no feasible completed trial yet.
    """
    study, paths, url = load_study(name, root, storage)
    if len(study.directions) == 1:
        return best_summary(study, paths, url)
    states = trials_by_state(study)
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


@dataclass(frozen=True)
class SavedInference:
    """The temperature, threshold and calibration summary recorded in a ``model.json`` (None: an older file)."""

    threshold: ThresholdChoice | None
    temperature: float
    calibration: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold.to_json() if self.threshold is not None else None,
            "temperature": self.temperature,
            "calibration": self.calibration,
        }


def read_saved_inference(folder: Path) -> SavedInference:
    """Read what :class:`ValidationReport` recorded in ``folder/model.json``.

    Raises:
        WeightsError: the folder has no readable ``model.json``.
    """
    card = read_card(folder)
    raw = card.get("threshold")
    threshold = ThresholdChoice.from_json(raw) if isinstance(raw, dict) else None
    calibration = card.get("calibration")
    return SavedInference(threshold, float(card.get("temperature", 1.0)), calibration if calibration else None)
