"""What a study optimises: the ``study.objectives`` list (one metric and direction per Optuna objective)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hpo.errors import ConfigError, key_path
from hpo.metrics import ALL_METRICS, METRICS

__all__ = ["DIRECTIONS", "ObjectiveSpec", "check_direction", "parse_objectives"]

DIRECTIONS = ("maximize", "minimize")
_EXAMPLE = "[{metric: val/auroc, direction: maximize}, {metric: model/params, direction: minimize}]"


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective of the study: a metric of :data:`hpo.metrics.ALL_METRICS` and the direction it improves in."""

    metric: str
    direction: str


def check_direction(metric: str, direction: str, where: str) -> None:
    """Refuse a direction against the metric's own (maximising ``val/loss``, minimising ``val/auroc``...).

    Every metric hpo knows improves one way only, so the other way is a slip that would search for the worst
    models (and, for the first objective, pick each trial's worst epoch).

    Raises:
        ConfigError: ``direction`` is not ``metric``'s own.
    """
    own = ALL_METRICS[metric]
    if direction != own:
        better = "higher" if own == "maximize" else "lower"
        raise ConfigError(
            f"{where}: {metric} is better when {better}, so {direction} would search for the worst models; "
            f"write direction: {own} or leave direction out (it defaults to the metric's own)"
        )


def parse_objectives(raw: object, where: str) -> tuple[ObjectiveSpec, ...]:
    """Parse ``study.objectives``: a list of ``{metric, direction}`` mappings (or bare metric names).

    The first objective must be a validation metric (``val/...``): it chooses the epoch whose weights represent
    the trial, and every other objective is taken at that epoch.

    Raises:
        ConfigError: not a non-empty list, an unknown key or metric, a bad direction, a repeated metric, or a first
            objective that is not measured every epoch.
    """
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty list such as {_EXAMPLE}, got {raw!r}")
    objectives: list[ObjectiveSpec] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        entry: Mapping[str, object] = {"metric": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{at}: must be a mapping with metric and direction, e.g. {_EXAMPLE}, got {item!r}")
        for key in entry:
            if key not in ("metric", "direction"):
                raise ConfigError(f"{key_path(at, key)}: unknown key; an objective has only metric and direction")
        metric = entry.get("metric")
        if metric is None:
            raise ConfigError(f"{at}.metric: missing; each objective names a metric, e.g. {_EXAMPLE}")
        if not isinstance(metric, str) or metric not in ALL_METRICS:
            raise ConfigError(f"{at}.metric: must be one of {list(ALL_METRICS)}, got {metric!r}")
        direction = entry.get("direction", ALL_METRICS[metric])
        if direction not in DIRECTIONS:
            raise ConfigError(f"{at}.direction: must be 'maximize' or 'minimize', got {direction!r}")
        if any(o.metric == metric for o in objectives):
            raise ConfigError(f"{at}.metric: {metric} is already an objective; list each metric once")
        check_direction(metric, str(direction), f"{at}.direction")
        objectives.append(ObjectiveSpec(metric, str(direction)))
    if objectives[0].metric not in METRICS:
        raise ConfigError(
            f"{where}[0].metric: the first objective must be a validation metric ({list(METRICS)}), got "
            f"{objectives[0].metric!r}: it picks the epoch whose weights represent a trial. Put a validation metric "
            "such as val/auroc first"
        )
    return tuple(objectives)
