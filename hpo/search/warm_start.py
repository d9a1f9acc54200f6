"""Warm start: queue good configurations as the first trials of a study, from an earlier study (``hpo run --from
OLD[:K]``) or from the file (``study.enqueue``), keeping only the parameters the new search space can take."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpo.config.space import FixedParam, ParamSpec, SearchSpace, value_problem
from hpo.errors import ConfigError, StudyError
from hpo.study.access import load_study

__all__ = [
    "WARM_START_ATTR",
    "WarmStart",
    "best_configurations",
    "enqueue_configurations",
    "parse_from",
]

#: The study's user attribute recording what was queued at its start (so a resumed run queues nothing again).
WARM_START_ATTR = "warm_start"


@dataclass(frozen=True)
class WarmStart:
    """What was queued: each configuration as queued, the values dropped from them (``name=value (why)``), and the
    configurations not queued because the budget (``n_trials``) had no room left for them."""

    source: str
    queued: tuple[dict[str, Any], ...]
    dropped: tuple[str, ...] = ()
    over_budget: tuple[dict[str, Any], ...] = ()
    budget: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "queued": [dict(q) for q in self.queued],
            "dropped": list(self.dropped),
            "over_budget": [dict(q) for q in self.over_budget],
        }


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
    return value_problem(spec, value)


def enqueue_configurations(
    study: optuna.Study,
    space: SearchSpace,
    configurations: Sequence[Mapping[str, Any]],
    source: str,
    *,
    budget: int | None = None,
    on_queued: Callable[[WarmStart | None], None] | None = None,
) -> WarmStart | None:
    """Queue ``configurations`` as the study's next trials, once: only into a study without trials yet (a resumed
    study already has them, or ran them). Values the space cannot take (out of range, off the ``step`` grid, not a
    choice, fixed, unknown) are dropped (and listed); a configuration left empty is not queued. Queued trials count
    towards ``n_trials`` like any other, so at most ``budget`` are queued (None: no limit) and the rest are listed as
    not queued: a queued trial beyond the budget would wait in the storage forever. ``on_queued`` is called as soon
    as that is decided, before any trial runs, with what was queued (None: nothing).

    Returns:
        What was queued, or None when the study already has trials.
    """
    result = None
    if configurations and not study.get_trials(deepcopy=False) and WARM_START_ATTR not in study.user_attrs:
        result = _enqueue(study, space, configurations, source, budget)
    if on_queued is not None:
        on_queued(result)
    return result


def _enqueue(
    study: optuna.Study,
    space: SearchSpace,
    configurations: Sequence[Mapping[str, Any]],
    source: str,
    budget: int | None,
) -> WarmStart:
    specs = {spec.name: spec for spec in space.params}
    queued: list[dict[str, Any]] = []
    over_budget: list[dict[str, Any]] = []
    lost: dict[str, None] = {}  # each value once: five configurations of one study often lose the same one
    for config in configurations:
        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for name, value in config.items():
            spec = specs.get(name)
            why = "not in this search space" if spec is None else _why_not(spec, value)
            if why is None:
                kept[name] = value
            else:
                dropped.append(f"{name}={value!r} ({why})")
        if kept in over_budget:
            continue
        if kept and kept not in queued:
            if budget is not None and len(queued) >= budget:
                over_budget.append(kept)  # what it lost does not matter: it is not queued
                continue
            queued.append(kept)
        lost.update(dict.fromkeys(dropped))
    for params in queued:
        study.enqueue_trial(params, skip_if_exists=True)
    result = WarmStart(source, tuple(queued), tuple(lost), tuple(over_budget), budget)
    study.set_user_attr(WARM_START_ATTR, result.to_json())
    return result
