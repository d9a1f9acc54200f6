"""Optuna samplers and pruners, built from the ``sampler`` and ``pruner`` settings of a search-space file."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from hpo.errors import ConfigError, key_path

__all__ = [
    "MIN_MAX_HISTORY",
    "PRUNERS",
    "SAMPLERS",
    "AlgorithmSettings",
    "build_pruner",
    "build_sampler",
    "parse_algorithm",
]

_Option = tuple[tuple[type, ...], str]  # accepted types, description
_INT: tuple[type, ...] = (int,)
_NUM: tuple[type, ...] = (int, float)
_BOOL: tuple[type, ...] = (bool,)

#: Sampler name -> its options (besides ``name``) and their types.
SAMPLERS: dict[str, dict[str, _Option]] = {
    "tpe": {
        "seed": ((int, type(None)), "an integer"),
        "n_startup_trials": (_INT, "an integer"),
        "n_ei_candidates": (_INT, "an integer"),
        "multivariate": (_BOOL, "true or false"),
        "group": (_BOOL, "true or false"),
        "constant_liar": (_BOOL, "true or false"),
        "max_history": ((int, type(None)), "an integer >= 225, or null for the whole history"),
    },
    "random": {"seed": ((int, type(None)), "an integer")},
    "nsga2": {
        "seed": ((int, type(None)), "an integer"),
        "population_size": (_INT, "an integer"),
        "mutation_prob": ((int, float, type(None)), "a number"),
        "crossover_prob": (_NUM, "a number"),
        "swapping_prob": (_NUM, "a number"),
    },
    "qmc": {
        "seed": ((int, type(None)), "an integer"),
        "qmc_type": ((str,), "'sobol' or 'halton'"),
        "scramble": (_BOOL, "true or false"),
    },
}

#: Pruner name -> its options (besides ``name``) and their types.
PRUNERS: dict[str, dict[str, _Option]] = {
    "median": {
        "n_startup_trials": (_INT, "an integer"),
        "n_warmup_steps": (_INT, "an integer"),
        "interval_steps": (_INT, "an integer"),
    },
    "percentile": {
        "percentile": (_NUM, "a number"),
        "n_startup_trials": (_INT, "an integer"),
        "n_warmup_steps": (_INT, "an integer"),
        "interval_steps": (_INT, "an integer"),
    },
    "successive_halving": {
        "min_resource": ((int, str), "an integer or 'auto'"),
        "reduction_factor": (_INT, "an integer"),
        "min_early_stopping_rate": (_INT, "an integer"),
    },
    "hyperband": {
        "min_resource": (_INT, "an integer"),
        "max_resource": ((int, str), "an integer or 'auto'"),
        "reduction_factor": (_INT, "an integer"),
    },
    "none": {},
}

_STRINGS = {"min_resource": ("auto",), "max_resource": ("auto",), "qmc_type": ("sobol", "halton")}
#: Options hpo applies itself rather than passing to the Optuna class: ``max_history`` (TPE sees only that many
#: recent trials and the best ones; hpo.study.samplers applies it, with its own default when it is left out).
_HPO_OPTIONS = {"tpe": ("max_history",)}
#: The smallest ``max_history``: with the 25 best trials kept beside it TPE splits its good group (at most 25 trials,
#: a tenth of the history) off at least 250 trials, so that group is the one it would take from the whole history.
MIN_MAX_HISTORY = 225

DEFAULT_SAMPLER: dict[str, Any] = {
    "name": "tpe",
    "seed": 0,
    "n_startup_trials": 10,
    "multivariate": True,
    "group": True,
}
#: Chosen from figure 6 of docs/benchmarks.md: over 5 seeds it trains 42% fewer epochs than no pruning and loses at
#: most 0.4% of the best value (the median pruner with 5 warm-up epochs saved 15-23%; successive halving and
#: hyperband saved more on easy data but lost up to 2% of the best value on the harder task).
DEFAULT_PRUNER: dict[str, Any] = {"name": "percentile", "percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 2}


@dataclass(frozen=True)
class AlgorithmSettings:
    """A sampler or pruner: its name and keyword options for the Optuna class."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        return self.options.get("seed")


def parse_algorithm(
    raw: object, where: str, table: Mapping[str, Mapping[str, _Option]], default: Mapping[str, Any]
) -> AlgorithmSettings:
    """Parse a ``sampler`` or ``pruner`` mapping (or a bare name) against ``table``."""
    if raw is None:
        raw = dict(default)
    if isinstance(raw, str):
        raw = {"name": raw} if raw != default["name"] else dict(default)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a name or a mapping with 'name', got {raw!r}")
    name = raw.get("name", default["name"])
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"{where}.name: must be one of {sorted(table)}, got {name!r}")
    options = dict(default) if name == default["name"] and set(raw) <= {"name"} else {}
    options.update(raw)
    options.pop("name", None)
    allowed = table[name]
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(
                f"{key_path(where, key)}: unknown option for {name!r}; allowed options are {sorted(allowed)}"
            )
        types, desc = allowed[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(f"{where}.{key}: must be {desc}, got {value!r}")
        if isinstance(value, str) and value not in _STRINGS.get(key, ()):
            raise ConfigError(f"{where}.{key}: must be {desc}, got {value!r}")
        if key == "max_history" and isinstance(value, int) and value < MIN_MAX_HISTORY:
            raise ConfigError(
                f"{where}.{key}: must be at least {MIN_MAX_HISTORY} (TPE takes its 25 best trials out of at least "
                f"250), or null for the whole history, got {value!r}"
            )
    return AlgorithmSettings(name, options)


def build_sampler(settings: AlgorithmSettings, where: str = "study.sampler") -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler described by ``settings``, without hpo's own options (``max_history``: a study runs
    its sampler as :func:`hpo.study.samplers.build_sampler` builds it)."""
    cls: Any = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "qmc": optuna.samplers.QMCSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }[settings.name]
    return _construct(cls, settings, where)


def build_pruner(settings: AlgorithmSettings, where: str = "study.pruner") -> optuna.pruners.BasePruner:
    """Build the Optuna pruner described by ``settings``."""
    cls: Any = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[settings.name]
    return _construct(cls, settings, where)


def _construct(cls: Any, settings: AlgorithmSettings, where: str) -> Any:
    own = _HPO_OPTIONS.get(settings.name, ())
    options = {k: v for k, v in settings.options.items() if k not in own}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return cls(**options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: invalid options for {settings.name!r}: {exc}") from None
