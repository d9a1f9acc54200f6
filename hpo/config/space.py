"""The search space: parameter specs and how a trial samples them (parsed from ``params`` by params_section)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import optuna

from hpo.errors import ConfigError

__all__ = [
    "HYPERPARAMETERS",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "ParamSpec",
    "SearchSpace",
    "ValueRule",
    "value_problem",
]

Scalar = Union[bool, int, float, str]  # noqa: UP007 - a runtime alias, valid on Python 3.10


@dataclass(frozen=True)
class ValueRule:
    """What values one hyperparameter accepts."""

    kind: str  # "float", "int" or "str"
    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    options: tuple[str, ...] = ()
    help: str = ""

    def check(self, value: object, where: str) -> None:
        if self.kind == "str":
            if not isinstance(value, str) or value not in self.options:
                raise ConfigError(f"{where}: must be one of {list(self.options)}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number ({self.kind}), got {value!r}")
        if self.kind == "int" and not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            op = ">=" if self.low_inclusive else ">"
            raise ConfigError(f"{where}: must be {op} {self.low:g} ({self.help}), got {value!r}")
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            op = "<=" if self.high_inclusive else "<"
            raise ConfigError(f"{where}: must be {op} {self.high:g} ({self.help}), got {value!r}")


#: The hyperparameters the objective understands, and the values each accepts.
HYPERPARAMETERS: dict[str, ValueRule] = {
    "lr": ValueRule("float", 0.0, False, help="the optimizer's learning rate"),
    "weight_decay": ValueRule("float", 0.0, help="L2 penalty of the optimizer"),
    "momentum": ValueRule("float", 0.0, True, 1.0, False, help="momentum of sgd and rmsprop"),
    "optimizer": ValueRule("str", options=("adam", "adamw", "sgd", "rmsprop")),
    "n_layers": ValueRule("int", 0, help="number of hidden layers, 0 is logistic regression"),
    "hidden_size": ValueRule("int", 1, help="units per hidden layer"),
    "dropout": ValueRule("float", 0.0, True, 1.0, False, help="dropout probability after each hidden layer"),
    "activation": ValueRule("str", options=("relu", "gelu", "silu", "tanh", "leaky_relu", "elu")),
    "batch_size": ValueRule("int", 1, help="rows per training batch"),
    "preprocessing.numeric": ValueRule("str", options=("standard", "robust", "quantile")),
    "model.embedding": ValueRule("str", options=("none", "periodic")),
    "model.embedding_dim": ValueRule("int", 1, help="width of each numeric input's periodic embedding"),
    "model.n_frequencies": ValueRule("int", 1, help="learned frequencies per numeric input of a periodic embedding"),
    "model.frequency_sigma": ValueRule(
        "float", 0.0, False, help="standard deviation of the initial frequencies of a periodic embedding"
    ),
}


@dataclass(frozen=True)
class Condition:
    """A parameter is active only when ``parent`` took one of ``values``."""

    parent: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class FloatParam:
    """A float sampled with ``trial.suggest_float``."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    conditions: tuple[Condition, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Scalar:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class IntParam:
    """An integer sampled with ``trial.suggest_int``."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    conditions: tuple[Condition, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Scalar:
        return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class CategoricalParam:
    """One of a list of values, sampled with ``trial.suggest_categorical``."""

    name: str
    choices: tuple[Scalar, ...]
    conditions: tuple[Condition, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Scalar:
        value: Scalar = trial.suggest_categorical(self.name, list(self.choices))  # type: ignore[assignment]
        return value


@dataclass(frozen=True)
class FixedParam:
    """A value that every trial uses as it is (not searched, not stored as an Optuna parameter)."""

    name: str
    value: Scalar
    conditions: tuple[Condition, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Scalar:
        return self.value


ParamSpec = Union[FloatParam, IntParam, CategoricalParam, FixedParam]  # noqa: UP007 - runtime alias

#: How far (in steps) a float may sit from its ``step`` grid and still be on it: Optuna's own tolerance.
GRID_TOLERANCE = 1e-8


def value_problem(spec: FloatParam | IntParam | CategoricalParam, value: object) -> str | None:
    """Why a trial cannot take ``value`` for the searched parameter ``spec`` (None: it can), as Optuna's
    distribution would judge it: a choice of the list, or a number in [low, high] on the ``step`` grid."""
    if isinstance(spec, CategoricalParam):
        # True == 1 in Python, but a trial given True for the choice 1 would train with another type
        same = any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in spec.choices)
        return None if same else f"not one of {list(spec.choices)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not a number"
    if not math.isfinite(value):
        return "not a finite number"
    if isinstance(spec, IntParam) and float(value) != int(value):
        return "not a whole number"
    if not spec.low <= value <= spec.high:
        return f"outside [{_number(spec.low)}, {_number(spec.high)}]"
    if spec.step is None:
        return None
    steps = (value - spec.low) / spec.step
    if isinstance(spec, IntParam):
        on_grid = (int(value) - spec.low) % spec.step == 0
    else:
        on_grid = abs(steps - round(steps)) < GRID_TOLERANCE
    if on_grid:
        return None
    below = spec.low + math.floor(steps) * spec.step
    return (
        f"not on the grid {_number(spec.low)}, {_number(spec.low + spec.step)}, ..., {_number(spec.high)} (step "
        f"{_number(spec.step)}); the nearest values are {_number(below)} and {_number(below + spec.step)}"
    )


def _number(x: float) -> str:
    """``x`` in a message: 0.30000000000000004 as 0.3, a whole number without a decimal point."""
    return f"{x:.10g}"


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of an experiment, in an order where every condition's parent comes first."""

    params: tuple[ParamSpec, ...]

    def sample(self, trial: optuna.Trial) -> dict[str, Scalar]:
        """Sample the active parameters for ``trial`` (fixed values included)."""
        values: dict[str, Scalar] = {}
        for spec in self.params:
            if all(c.parent in values and values[c.parent] in c.values for c in spec.conditions):
                values[spec.name] = spec.suggest(trial)
        return values

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)
