"""The ``inference`` section of a search-space file: the decision-threshold rule and temperature scaling."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo.config.yaml_doc import as_mapping, check_keys
from hpo.errors import ConfigError, key_path

__all__ = ["THRESHOLD_RULES", "InferenceSettings", "ThresholdRule", "parse_inference"]

#: Rule name -> what its target means (None: the rule takes no target).
THRESHOLD_RULES: dict[str, str | None] = {
    "fixed": "the threshold itself",
    "max_f1": None,
    "youden": None,
    "min_recall": "the recall to reach",
    "min_precision": "the precision to reach",
}


@dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is chosen on the validation split.

    ``fixed`` uses ``target`` as the threshold; ``max_f1`` and ``youden`` maximise F1 or Youden's J (TPR - FPR);
    ``min_recall`` takes the highest threshold whose recall reaches ``target``; ``min_precision`` the lowest threshold
    whose precision reaches ``target`` (the most recall at that precision).
    """

    name: str = "fixed"
    target: float | None = 0.5

    def describe(self) -> str:
        """``max_f1``, ``min_recall >= 0.95``, ``fixed 0.5``."""
        if self.name == "fixed":
            return f"fixed {self.target:g}"
        if self.target is None:
            return self.name
        return f"{self.name} >= {self.target:g}"


@dataclass(frozen=True)
class InferenceSettings:
    """What is fitted on the validation split when a trial becomes the best one."""

    threshold: ThresholdRule = ThresholdRule()
    temperature_scaling: bool = False
    #: Average the probabilities of the best ``ensemble_top_k`` trials' models (None: the single best model).
    ensemble_top_k: int | None = None


def _fraction(value: object, where: str, *, closed_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where}: must be a number between 0 and 1, got {value!r}")
    ok = (0 <= value <= 1) if closed_low else (0 < value <= 1)
    if not ok:
        bounds = "between 0 and 1" if closed_low else "in (0, 1] (0 would be reached by any threshold)"
        raise ConfigError(f"{where}: must be {bounds}, got {value!r}")
    return float(value)


def _parse_threshold(raw: object, where: str) -> ThresholdRule:
    names = sorted(THRESHOLD_RULES)
    if isinstance(raw, str):
        if raw not in THRESHOLD_RULES:
            close = difflib.get_close_matches(raw, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown threshold rule {raw!r}{hint}; use fixed, max_f1, youden, "
                "{fixed: 0.3}, {min_recall: 0.95} or {min_precision: 0.9}"
            )
        if THRESHOLD_RULES[raw] is not None and raw != "fixed":
            raise ConfigError(f"{where}: rule {raw!r} needs a target, e.g. {{{raw}: 0.9}} ({THRESHOLD_RULES[raw]})")
        return ThresholdRule(raw, 0.5 if raw == "fixed" else None)
    if isinstance(raw, Mapping):
        if len(raw) != 1:
            raise ConfigError(f"{where}: must name exactly one rule, e.g. {{min_recall: 0.95}}, got {dict(raw)!r}")
        ((name, target),) = raw.items()
        if name not in THRESHOLD_RULES:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key_path(where, name)}: unknown threshold rule{hint}; allowed rules are {names}")
        if THRESHOLD_RULES[name] is None:
            raise ConfigError(f"{where}.{name}: takes no target; write `threshold: {name}`")
        return ThresholdRule(name, _fraction(target, f"{where}.{name}", closed_low=name == "fixed"))
    raise ConfigError(
        f"{where}: must be a rule name (fixed, max_f1, youden) or a mapping such as {{min_recall: 0.95}}, "
        f"got {type(raw).__name__} {raw!r}"
    )


def parse_inference(raw: object, where: str) -> InferenceSettings:
    """Validate the ``inference`` section (``where`` is ``<file>: inference``); absent means the defaults."""
    if raw is None:
        return InferenceSettings()
    raw = as_mapping(raw, where)
    check_keys(raw, {"threshold", "temperature_scaling", "ensemble"}, where)
    scaling: Any = raw.get("temperature_scaling", False)
    if not isinstance(scaling, bool):
        raise ConfigError(f"{where}.temperature_scaling: must be true or false, got {scaling!r}")
    rule = _parse_threshold(raw["threshold"], f"{where}.threshold") if "threshold" in raw else ThresholdRule()
    top_k = None
    if "ensemble" in raw:
        ensemble = as_mapping(raw["ensemble"], f"{where}.ensemble")
        check_keys(ensemble, {"top_k"}, f"{where}.ensemble")
        top_k = ensemble.get("top_k")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 2 <= top_k <= 50:
            raise ConfigError(
                f"{where}.ensemble.top_k: must be a whole number of models from 2 to 50, such as 5, got {top_k!r}"
            )
    return InferenceSettings(rule, scaling, top_k)
