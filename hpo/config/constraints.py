"""Constraints on a trial's metrics (``val/recall >= 0.95``, ``model/params <= 50000``): parsed and evaluated."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hpo.errors import ConfigError
from hpo.metrics import ALL_METRICS, MODEL_METRICS

__all__ = ["Constraint", "feasible", "parse_constraint", "parse_constraints", "violations"]

_FORM = re.compile(r"^\s*(?P<metric>[A-Za-z0-9_./-]+?)\s*(?P<op><=|>=|<|>|==|=)\s*(?P<bound>\S+)\s*$")
_EXAMPLE = "write METRIC >= NUMBER or METRIC <= NUMBER, for example 'val/recall >= 0.95' or 'model/params <= 50000'"
#: Metrics that are fractions: a bound outside [0, 1] can never (or always) hold.
_FRACTIONS = {name for name in ALL_METRICS if name.startswith("val/") and name != "val/loss"}


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``: a trial is feasible when its metric satisfies it (``op`` is ``>=`` or ``<=``)."""

    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        """The constraint as written in files and shown to people, e.g. ``val/recall >= 0.95``."""
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: float) -> float:
        """How far ``value`` is from satisfying the constraint: ``<= 0`` when it holds (Optuna's convention).

        A NaN value (a metric that could not be measured) counts as violated.
        """
        if math.isnan(value):
            return math.inf
        return self.bound - value if self.op == ">=" else value - self.bound


def parse_constraint(raw: object, where: str) -> Constraint:
    """Parse one constraint such as ``"val/recall >= 0.95"``.

    Raises:
        ConfigError: not a string of that form, an unknown metric, or a bound that is not a finite number.
    """
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: must be a string; {_EXAMPLE}, got {raw!r}")
    match = _FORM.match(raw)
    if match is None:
        raise ConfigError(f"{where}: cannot read {raw!r}; {_EXAMPLE}")
    metric, op, bound_text = match["metric"], match["op"], match["bound"]
    if op not in (">=", "<="):
        raise ConfigError(
            f"{where}: {raw!r} uses {op!r}; only >= and <= are allowed (Optuna counts a constraint as met when the "
            f"value reaches its bound), {_EXAMPLE}"
        )
    if metric not in ALL_METRICS:
        raise ConfigError(f"{where}: {raw!r} names an unknown metric {metric!r}; use one of {list(ALL_METRICS)}")
    try:
        bound = float(bound_text)
    except ValueError:
        raise ConfigError(f"{where}: {raw!r} compares with {bound_text!r}, which is not a number; {_EXAMPLE}") from None
    if not math.isfinite(bound):
        raise ConfigError(f"{where}: {raw!r} has a bound that is not a finite number; {_EXAMPLE}")
    if metric in _FRACTIONS and not 0.0 <= bound <= 1.0:
        raise ConfigError(f"{where}: {raw!r} can never be decided by its bound: {metric} is between 0 and 1")
    if metric in MODEL_METRICS and bound <= 0.0:
        outcome = "no trial could meet it" if op == "<=" else "every trial meets it"
        raise ConfigError(
            f"{where}: {raw!r} can never be decided by its bound: {metric} is always above 0, so {outcome}; "
            "use a positive bound"
        )
    return Constraint(metric, op, bound)


def parse_constraints(raw: object, where: str) -> tuple[Constraint, ...]:
    """Parse the ``study.constraints`` list of a search-space file (``None``: no constraints).

    Raises:
        ConfigError: a bad entry (see :func:`parse_constraint`), a repeated one, or bounds on one metric that no
            trial could satisfy together (``model/params >= 1000`` and ``model/params <= 500``).
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: must be a list of constraints such as ['val/recall >= 0.95'], got {raw!r}")
    constraints: list[Constraint] = []
    for i, item in enumerate(raw):
        constraint = parse_constraint(item, f"{where}[{i}]")
        if any((c.metric, c.op) == (constraint.metric, constraint.op) for c in constraints):
            raise ConfigError(
                f"{where}[{i}]: {constraint.metric} already has a {constraint.op} bound in this list; keep one"
            )
        constraints.append(constraint)
    for low in (c for c in constraints if c.op == ">="):
        for high in (c for c in constraints if c.op == "<=" and c.metric == low.metric):
            if low.bound > high.bound:
                raise ConfigError(
                    f"{where}: '{low.text}' and '{high.text}' contradict each other, so no trial could be feasible; "
                    "fix one bound"
                )
    return tuple(constraints)


def violations(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> dict[str, float]:
    """Constraint text -> violation (``<= 0``: satisfied) for a trial's ``metrics``, as given to Optuna."""
    return {c.text: c.violation(float(metrics.get(c.metric, math.nan))) for c in constraints}


def feasible(constraint_values: Mapping[str, float]) -> bool:
    """Whether every constraint holds (Optuna's rule: every value ``<= 0``); True without constraints."""
    return all(value <= 0.0 for value in constraint_values.values())
