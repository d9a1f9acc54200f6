"""Warm start: queue good configurations as the first trials of a study, from an earlier study (``hpo run --from
OLD[:K]``) or from the file (``study.enqueue``), keeping only the parameters the new search space can take."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam, ParamSpec, SearchSpace
from hpo.errors import ConfigError, StudyError
from hpo.study.access import load_study

__all__ = ["WARM_START_ATTR", "WarmStart", "best_configurations", "enqueue_configurations", "parse_from"]

#: The study's user attribute recording what was queued at its start (so a resumed run queues nothing again).
WARM_START_ATTR = "warm_start"


@dataclass(frozen=True)
class WarmStart:
    """What was queued: each configuration as queued, and the values dropped from them (``name=value (why)``)."""

    source: str
    queued: tuple[dict[str, Any], ...]
    dropped: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "queued": [dict(q) for q in self.queued], "dropped": list(self.dropped)}


def parse_from(text: str) -> tuple[str, int]:
    """``OLD`` or ``OLD:K`` -> (study name, K); K defaults to 5.

    Raises:
        ConfigError: K is not a whole number from 1.
    """
    name, sep, count = text.partition(":")
    if not sep:
        return name, 5
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--from: {text!r} must be STUDY or STUDY:K with K a whole number from 1, such as old:5")
    return name, int(count)


def best_configurations(name: str, k: int, *, root: Path, storage: str | None) -> list[dict[str, Any]]:
    """The parameters of the ``k`` best feasible completed trials of study ``name`` (best first).

    Raises:
        StudyError: no such study, or a multi-objective one, or one without a feasible completed trial.
    """
    study, _, _ = load_study(name, root, storage)
    if len(study.directions) > 1:
        raise StudyError(f"--from {name}: is a multi-objective study; warm-start from a single-objective study")
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value) and all(v <= 0 for v in t.constraints.values())
    ]
    if not complete:
        raise StudyError(f"--from {name}: has no feasible completed trial to start from; run it first")
    complete.sort(key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    return [dict(t.params) for t in complete[:k]]


def _why_not(spec: ParamSpec, value: Any) -> str | None:
    """Why ``value`` cannot be queued for ``spec`` (None: it can)."""
    if isinstance(spec, FixedParam):
        return "fixed in this search space"
    if isinstance(spec, CategoricalParam):
        return None if value in spec.choices else f"not one of {list(spec.choices)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not a number"
    if isinstance(spec, IntParam) and float(value) != int(value):
        return "not a whole number"
    assert isinstance(spec, (FloatParam, IntParam))
    if not spec.low <= value <= spec.high:
        return f"outside [{spec.low:g}, {spec.high:g}]"
    return None


def enqueue_configurations(
    study: optuna.Study, space: SearchSpace, configurations: Sequence[Mapping[str, Any]], source: str
) -> WarmStart | None:
    """Queue ``configurations`` as the study's next trials, once: only into a study without trials yet (a resumed
    study already has them, or ran them). Values the space cannot take are dropped (and listed); a configuration
    left empty is not queued. Queued trials count towards ``n_trials`` like any other.

    Returns:
        What was queued, or None when the study already has trials.
    """
    if not configurations or study.get_trials(deepcopy=False) or WARM_START_ATTR in study.user_attrs:
        return None
    specs = {spec.name: spec for spec in space.params}
    queued: list[dict[str, Any]] = []
    dropped: list[str] = []
    for config in configurations:
        kept = {}
        for name, value in config.items():
            spec = specs.get(name)
            why = "not in this search space" if spec is None else _why_not(spec, value)
            if why is None:
                kept[name] = value
            else:
                dropped.append(f"{name}={value!r} ({why})")
        if kept and kept not in queued:
            queued.append(kept)
    for params in queued:
        study.enqueue_trial(params, skip_if_exists=True)
    result = WarmStart(source, tuple(queued), tuple(dropped))
    study.set_user_attr(WARM_START_ATTR, result.to_json())
    return result
