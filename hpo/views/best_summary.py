"""What a study has found so far: its best feasible trial, and whether ``best/`` holds that trial's weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.best.format import read_card
from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.storage import redact_url
from hpo.views import studies_list as overview

__all__ = ["BestSummary", "best_summary", "best_trial", "describe_best", "is_constrained"]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study; None for none yet, or for a multi-objective study."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:
        return None


def is_constrained(study: optuna.Study) -> bool:
    """True when the study records constraints (its best trial is then its best *feasible* trial)."""
    return bool(study.user_attrs.get("constraints"))


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
        }


def describe_best(name: str, *, root: Path = Path("studies"), storage: str | None = None) -> BestSummary:
    """Read the best trial of study ``name`` from its storage and check ``best/`` against it.

    ``weights_status`` is ``ok`` when ``best/model.json`` names that trial, ``missing`` when there is no ``best/``
    here, or ``stale`` when it names another trial (its weights were written on another host sharing the storage).

    Raises:
        StudyError: no such study, no feasible completed trial yet, or a multi-objective study (see
            :func:`hpo.views.front_summary.describe_front`).
    """
    study, paths, url = overview.open_study(name, root, storage)
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
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    if best is None:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has no {'feasible ' if is_constrained(study) else ''}completed "
            f"trial yet ({states or 'no trials'}); run `hpo run` until one completes"
            + (" that satisfies the study's constraints" if is_constrained(study) else "")
        )
    status, folder = "missing", None
    if paths.best.exists():
        card = read_card(paths.best)
        folder = paths.best
        status = "ok" if card.get("trial") == best.number else "stale"
    return BestSummary(
        name,
        redact_url(url),
        study.direction.name.lower(),
        study.user_attrs.get("metric"),
        best.number,
        float(best.value) if best.value is not None else float("nan"),
        dict(best.user_attrs.get("params", best.params)),
        dict(best.user_attrs.get("metrics", {})),
        states,
        folder,
        status,
        best.user_attrs.get("worker"),
        {text: float(best.constraints.get(text, math.inf)) for text in study.user_attrs.get("constraints") or []},
    )
