"""The ``params`` section of a search-space file: each hyperparameter's range, checked and put in sampling order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hpo.config.space import (
    HYPERPARAMETERS,
    CategoricalParam,
    Condition,
    FixedParam,
    FloatParam,
    IntParam,
    ParamSpec,
    Scalar,
    SearchSpace,
    ValueRule,
)
from hpo.errors import ConfigError, key_path

__all__ = ["parse_search_space"]

_KEYS = {
    "float": {"type", "low", "high", "log", "step", "condition"},
    "int": {"type", "low", "high", "log", "step", "condition"},
    "categorical": {"type", "choices", "condition"},
    "fixed": {"type", "value", "condition"},
}


def parse_search_space(raw: object, where: str) -> SearchSpace:
    """Parse the ``params`` mapping of a search-space file.

    Args:
        raw: the YAML value of ``params``.
        where: ``"<file>: params"``, the prefix of error messages.

    Raises:
        ConfigError: naming the key path of the first problem found.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping of parameter name to its range, got {_kind(raw)}")
    specs: dict[str, ParamSpec] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or name not in HYPERPARAMETERS:
            raise ConfigError(
                f"{key_path(where, name)}: unknown hyperparameter; the objective understands {sorted(HYPERPARAMETERS)}"
            )
        specs[name] = _parse_param(name, body, f"{where}.{name}")
    for spec in specs.values():
        for cond in spec.conditions:
            _check_condition(spec.name, cond, specs, key_path(f"{where}.{spec.name}.condition", cond.parent))
    return SearchSpace(_topological_order(specs, where))


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )


def _parse_param(name: str, body: object, where: str) -> ParamSpec:
    rule = HYPERPARAMETERS[name]
    if not isinstance(body, Mapping):
        if isinstance(body, list):
            raise ConfigError(
                f"{where}: a list is ambiguous; write {{type: categorical, choices: {body!r}}} to search it "
                "or a single value to fix it"
            )
        if body is None:
            raise ConfigError(f"{where}: has no value; give a fixed value or a mapping with 'type'")
        rule.check(body, where)
        return FixedParam(name, body)  # type: ignore[arg-type]
    kind = body.get("type")
    if kind is None:
        kind = "categorical" if "choices" in body else "fixed" if "value" in body else None
    if not isinstance(kind, str) or kind not in _KEYS:
        raise ConfigError(
            f"{where}.type: must be one of {sorted(_KEYS)}, got {kind!r}; for example "
            "{type: float, low: 0.0001, high: 0.1, log: true}"
        )
    unknown = set(body) - _KEYS[kind]
    if unknown:
        key = sorted(unknown, key=str)[0]
        raise ConfigError(
            f"{key_path(where, key)}: unknown key for a {kind} parameter; allowed keys are {sorted(_KEYS[kind])}"
        )
    conditions = _parse_conditions(body.get("condition"), f"{where}.condition")
    if kind == "fixed":
        if "value" not in body:
            raise ConfigError(f"{where}.value: is required for a fixed parameter")
        rule.check(body["value"], f"{where}.value")
        return FixedParam(name, body["value"], conditions)
    if kind == "categorical":
        return _parse_categorical(name, body, rule, conditions, where)
    return _parse_range(name, kind, body, rule, conditions, where)


def _parse_categorical(
    name: str, body: Mapping[str, Any], rule: ValueRule, conditions: tuple[Condition, ...], where: str
) -> CategoricalParam:
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise ConfigError(f"{where}.choices: must be a list of values, got {_kind(choices)}")
    if not choices:
        raise ConfigError(f"{where}.choices: must not be empty; list at least one value")
    for i, choice in enumerate(choices):
        rule.check(choice, f"{where}.choices[{i}]")
    if len(set(choices)) != len(choices):
        raise ConfigError(f"{where}.choices: must not repeat a value, got {choices!r}")
    return CategoricalParam(name, tuple(choices), conditions)


def _parse_range(
    name: str, kind: str, body: Mapping[str, Any], rule: ValueRule, conditions: tuple[Condition, ...], where: str
) -> FloatParam | IntParam:
    if kind == "int" and rule.kind != "int":
        raise ConfigError(f"{where}.type: {name} is a {rule.kind}, it cannot be searched as int; use type: {rule.kind}")
    if kind == "float" and rule.kind != "float":
        hint = "type: int" if rule.kind == "int" else "type: categorical with choices"
        raise ConfigError(f"{where}.type: {name} is a {rule.kind}, it cannot be searched as float; use {hint}")
    for key in ("low", "high"):
        if key not in body:
            raise ConfigError(f"{where}.{key}: is required for a {kind} parameter")
        rule.check(body[key], f"{where}.{key}")
    low, high = body["low"], body["high"]
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: must be true or false, got {log!r}")
    if low >= high:
        raise ConfigError(f"{where}.low: must be < high ({high!r}), got {low!r}; use a fixed value for a constant")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: must be > 0 when log is true, got {low!r}")
    step = body.get("step")
    if step is not None:
        if log:
            raise ConfigError(f"{where}.step: cannot be combined with log: true (Optuna samples either); drop one")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0 or not math.isfinite(step):
            raise ConfigError(f"{where}.step: must be a number > 0, got {step!r}")
        if kind == "int" and not isinstance(step, int):
            raise ConfigError(f"{where}.step: must be an integer for an int parameter, got {step!r}")
        span = (high - low) / step
        if abs(span - round(span)) > 1e-8 * max(1.0, abs(span)):
            raise ConfigError(f"{where}.step: high - low ({high - low!r}) must be a multiple of step, got {step!r}")
    if kind == "int":
        return IntParam(name, int(low), int(high), log, int(step) if step is not None else 1, conditions)
    return FloatParam(name, float(low), float(high), log, float(step) if step is not None else None, conditions)


def _parse_conditions(raw: object, where: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{where}: must map a parameter to the value(s) that activate this one, e.g. {{optimizer: sgd}}, "
            f"got {raw!r}"
        )
    conditions = []
    for parent, values in raw.items():
        vals = tuple(values) if isinstance(values, list) else (values,)
        if not vals:
            raise ConfigError(f"{key_path(where, parent)}: must list at least one value")
        conditions.append(Condition(str(parent), vals))
    return tuple(conditions)


def _check_condition(name: str, cond: Condition, specs: Mapping[str, ParamSpec], where: str) -> None:
    parent = specs.get(cond.parent)
    if parent is None:
        raise ConfigError(
            f"{where}: condition on unknown parameter {cond.parent!r}; it must be one of the params in this file "
            f"({sorted(specs)})"
        )
    if cond.parent == name:
        raise ConfigError(f"{where}: a parameter cannot depend on itself")
    if isinstance(parent, CategoricalParam):
        possible: tuple[Scalar, ...] = parent.choices
    elif isinstance(parent, FixedParam):
        possible = (parent.value,)
    else:
        raise ConfigError(
            f"{where}: conditions must depend on a categorical or fixed parameter, {cond.parent!r} is a range"
        )
    for value in cond.values:
        if value not in possible:
            raise ConfigError(f"{where}: {value!r} is not a possible value of {cond.parent!r} ({list(possible)})")


def _topological_order(specs: Mapping[str, ParamSpec], where: str) -> tuple[ParamSpec, ...]:
    ordered: list[ParamSpec] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join((*chain, name))
            raise ConfigError(f"{where}.{name}.condition: conditions form a cycle ({cycle}); break it")
        state[name] = 1
        for cond in specs[name].conditions:
            visit(cond.parent, (*chain, name))
        state[name] = 2
        ordered.append(specs[name])

    for name in specs:
        visit(name, ())
    return tuple(ordered)
