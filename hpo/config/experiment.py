"""Search-space files: YAML parsed and validated into frozen dataclasses, before anything trains."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hpo.config.algorithms import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    PRUNERS,
    SAMPLERS,
    AlgorithmSettings,
    build_pruner,
    build_sampler,
    parse_algorithm,
)
from hpo.config.constraints import Constraint, parse_constraints
from hpo.config.data_section import EMBEDDED_DATASETS, DataSettings, parse_data
from hpo.config.inference_section import InferenceSettings, parse_inference
from hpo.config.objectives import ObjectiveSpec, check_direction, parse_objectives
from hpo.config.overrides import apply_overrides
from hpo.config.params_section import parse_search_space
from hpo.config.space import FixedParam, SearchSpace, value_problem
from hpo.config.yaml_doc import as_mapping, check_keys, get_int, read_yaml_file, too_deep
from hpo.errors import ConfigError
from hpo.metrics import METRICS, MODEL_METRICS
from hpo.paths import validate_study_name

__all__ = [
    "EMBEDDED_DATASETS",
    "DataSettings",
    "Experiment",
    "StudySettings",
    "TrainingSettings",
    "load_experiment",
    "parse_experiment",
]

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


@dataclass(frozen=True)
class StudySettings:
    """How the Optuna study runs.

    ``metric`` and ``direction`` are those of the first objective; ``objectives`` lists every objective (one for a
    single-objective study: left empty, it is filled with ``(metric, direction)``). ``constraints`` decide which
    trials are feasible: only feasible trials are promoted to ``best/``.
    """

    name: str
    metric: str = "val/auroc"
    direction: str = "maximize"
    n_trials: int | None = 20
    timeout: float | None = None
    sampler: AlgorithmSettings = AlgorithmSettings("tpe")  # noqa: RUF009 - frozen, so sharing it is safe
    pruner: AlgorithmSettings = AlgorithmSettings("percentile")  # noqa: RUF009 - frozen, so sharing it is safe
    heartbeat_interval: int = 10
    grace_period: int = 30
    objectives: tuple[ObjectiveSpec, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    #: Configurations queued as the study's first trials (``study.enqueue``), parameter name -> value.
    enqueue: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.objectives:
            object.__setattr__(self, "objectives", (ObjectiveSpec(self.metric, self.direction),))

    @property
    def multi_objective(self) -> bool:
        """True when the study has several objectives (an Optuna multi-objective study with a Pareto front)."""
        return len(self.objectives) > 1

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def model_metrics(self) -> tuple[str, ...]:
        """The model metrics (``model/...``) that the objectives or constraints need, measured once per trial."""
        used = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        return tuple(m for m in MODEL_METRICS if m in used)


#: Trials trained at once by default (``training.population``): chosen from docs/benchmarks.md, figure 11.
DEFAULT_POPULATION = 1
#: The most trials one population may hold.
MAX_POPULATION = 1024


@dataclass(frozen=True)
class TrainingSettings:
    """Fixed training settings shared by every trial."""

    max_epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    accelerator: str = "cpu"
    early_stopping_patience: int | None = None
    #: Retrain the best configuration on train + validation rows (all CV folds) when the study finishes.
    refit: bool = False
    #: Trials trained together as one batched computation (hpo.train.population); 1 trains one trial at a time.
    population: int = DEFAULT_POPULATION


@dataclass(frozen=True)
class Experiment:
    """One search-space file, validated."""

    file: Path
    study: StudySettings
    data: DataSettings
    training: TrainingSettings
    space: SearchSpace
    inference: InferenceSettings = InferenceSettings()  # noqa: RUF009 - frozen, so sharing it is safe
    #: The command-line overrides applied to the file (``training.max_epochs=5``...), in order.
    overrides: tuple[str, ...] = ()

    def with_overrides(
        self,
        *,
        study_name: str | None = None,
        n_trials: int | None = None,
        timeout: float | None = None,
        seed: int | None = None,
    ) -> Experiment:
        """Apply command-line overrides; ``seed`` seeds the sampler and the training of every trial."""
        study = self.study
        training = self.training
        if study_name is not None:
            study = replace(study, name=validate_study_name(study_name, "--study"))
        if n_trials is not None:
            if n_trials < 1:
                raise ConfigError(f"--n-trials: must be >= 1, got {n_trials}")
            study = replace(study, n_trials=n_trials)
        if timeout is not None:
            if not timeout > 0:
                raise ConfigError(f"--timeout: must be > 0 seconds, got {timeout}")
            study = replace(study, timeout=timeout)
        if seed is not None:
            study = replace(study, sampler=replace(study.sampler, options={**study.sampler.options, "seed": seed}))
            training = replace(training, seed=seed)
        return replace(self, study=study, training=training)


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Read and validate a search-space file, with command-line ``overrides`` (``key.path=value``) applied first.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks a rule; the message names the file and key path (and
            the overrides, when there are any).
    """
    path = Path(path)
    raw = read_yaml_file(path)
    if not overrides:
        return parse_experiment(raw, path)
    try:
        experiment = parse_experiment(apply_overrides(raw, overrides), path)
    except ConfigError as exc:
        if str(exc).startswith("override "):
            raise
        raise ConfigError(f"{exc} (with the command-line overrides {' '.join(overrides)})") from None
    return replace(experiment, overrides=tuple(overrides))


def parse_experiment(raw: object, file: Path) -> Experiment:
    """Validate the parsed YAML of a search-space file (see :func:`load_experiment`)."""
    where = f"{file}:"
    if raw is None:
        raise ConfigError(f"{file}: is empty; see search_spaces/default.yaml for a complete example")
    if too_deep(raw):
        raise ConfigError(f"{file}: is nested too deeply to be a search-space file")
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{file}: must be a mapping with the sections study, data, training, params and inference, "
            f"got {type(raw).__name__}"
        )
    check_keys(raw, {"study", "data", "training", "params", "inference"}, where)
    space = parse_search_space(raw.get("params"), f"{where} params")
    study = _parse_study(as_mapping(raw.get("study"), f"{where} study"), file)
    data = parse_data(as_mapping(raw.get("data"), f"{where} data"), f"{where} data")
    training = _parse_training(as_mapping(raw.get("training"), f"{where} training"), f"{where} training")
    inference = parse_inference(raw.get("inference"), f"{where} inference")
    _check_enqueue_values(study.enqueue, space, f"{where} study.enqueue")
    if data.source is None and not data.path.is_absolute() and not data.path.exists():
        beside_file = file.parent / data.path
        if beside_file.exists():
            data = replace(data, path=beside_file)
    return Experiment(file, study, data, training, space, inference)


def _parse_study(raw: Mapping[str, Any], file: Path) -> StudySettings:
    where = f"{file}: study"
    check_keys(
        raw,
        {
            "name",
            "metric",
            "direction",
            "n_trials",
            "timeout",
            "sampler",
            "pruner",
            "heartbeat_interval",
            "grace_period",
            "objectives",
            "constraints",
            "enqueue",
        },
        where,
    )
    name = validate_study_name(raw.get("name", file.stem), f"{where}.name")
    objectives: tuple[ObjectiveSpec, ...] = ()
    if "objectives" in raw:
        for key in ("metric", "direction"):
            if key in raw:
                raise ConfigError(
                    f"{where}.{key}: cannot be combined with study.objectives (the first objective is the metric the "
                    f"epochs are chosen by); remove {key}, or remove objectives for a single-objective study"
                )
        objectives = parse_objectives(raw["objectives"], f"{where}.objectives")
        metric, direction = objectives[0].metric, objectives[0].direction
    else:
        metric = raw.get("metric", "val/auroc")
        if not isinstance(metric, str) or metric not in METRICS:
            raise ConfigError(f"{where}.metric: must be one of {list(METRICS)}, got {metric!r}")
        direction = raw.get("direction", METRICS[metric])
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"{where}.direction: must be 'maximize' or 'minimize', got {direction!r}")
        check_direction(metric, direction, f"{where}.direction")
    constraints = parse_constraints(raw.get("constraints"), f"{where}.constraints")
    n_trials = get_int(raw, "n_trials", None, where, low=1)
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 or math.isinf(timeout)
    ):
        raise ConfigError(f"{where}.timeout: must be a number of seconds > 0, got {timeout!r}")
    if n_trials is None and timeout is None:
        raise ConfigError(f"{where}: set n_trials, timeout (seconds) or both, or the study would never end")
    sampler = parse_algorithm(raw.get("sampler"), f"{where}.sampler", SAMPLERS, DEFAULT_SAMPLER)
    pruner = parse_algorithm(raw.get("pruner"), f"{where}.pruner", PRUNERS, DEFAULT_PRUNER)
    if len(objectives) > 1:
        if "pruner" in raw and pruner.name != "none":
            raise ConfigError(
                f"{where}.pruner: Optuna does not prune multi-objective trials (it has no single value to compare "
                f"epochs by), but {pruner.name!r} is configured; remove pruner or set it to none"
            )
        pruner = AlgorithmSettings("none")
    build_sampler(sampler, f"{where}.sampler")
    build_pruner(pruner, f"{where}.pruner")
    heartbeat = get_int(raw, "heartbeat_interval", 10, where, low=1) or 10
    grace = get_int(raw, "grace_period", max(30, 3 * heartbeat), where, low=1) or 30
    if grace <= heartbeat:
        raise ConfigError(
            f"{where}.grace_period: must be longer than heartbeat_interval ({heartbeat} s), got {grace}; a live "
            "worker would otherwise look dead"
        )
    return StudySettings(
        name,
        metric,
        direction,
        n_trials,
        float(timeout) if timeout else None,
        sampler,
        pruner,
        heartbeat,
        grace,
        objectives,
        constraints,
        _parse_enqueue(raw.get("enqueue"), f"{where}.enqueue"),
    )


def _parse_enqueue(raw: object, where: str) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) and item for item in raw):
        raise ConfigError(
            f"{where}: must be a list of configurations (parameter name -> value), such as "
            f"[{{lr: 0.01, n_layers: 2}}], got {raw!r}"
        )
    for i, item in enumerate(raw):
        for name, value in item.items():
            if not isinstance(name, str) or not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"{where}[{i}]: {name!r}: must map a parameter name to one value, got {value!r}")
    return tuple(dict(item) for item in raw)


def _check_enqueue_values(configurations: Sequence[Mapping[str, Any]], space: SearchSpace, where: str) -> None:
    """Every queued value of a searched parameter must be one a trial of it can take (a choice; a number in range and
    on its ``step`` grid): Optuna would warn and train the value anyway. Parameters the space fixes or lacks are left
    out when the study starts, with a note (a command-line override may fix one the file searches)."""
    specs = {spec.name: spec for spec in space.params if not isinstance(spec, FixedParam)}
    for i, config in enumerate(configurations):
        for name, value in config.items():
            spec = specs.get(name)
            why = None if spec is None else value_problem(spec, value)
            if why is not None:
                raise ConfigError(
                    f"{where}[{i}].{name}: must be a value params.{name} can take, got {value!r}: {why}; change it "
                    f"or remove it from study.enqueue[{i}]"
                )


def _parse_training(raw: Mapping[str, Any], where: str) -> TrainingSettings:
    keys = {"max_epochs", "batch_size", "seed", "accelerator", "early_stopping_patience", "refit", "population"}
    check_keys(raw, keys, where)
    refit = raw.get("refit", False)
    if not isinstance(refit, bool):
        raise ConfigError(f"{where}.refit: must be true or false, got {refit!r}")
    accelerator = raw.get("accelerator", "cpu")
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"{where}.accelerator: must be one of {list(ACCELERATORS)}, got {accelerator!r}")
    return TrainingSettings(
        max_epochs=get_int(raw, "max_epochs", 30, where, low=1) or 30,
        batch_size=get_int(raw, "batch_size", 64, where, low=1) or 64,
        seed=get_int(raw, "seed", 0, where) or 0,
        accelerator=accelerator,
        early_stopping_patience=get_int(raw, "early_stopping_patience", None, where, low=1),
        refit=refit,
        population=_population(raw, where),
    )


def _population(raw: Mapping[str, Any], where: str) -> int:
    population = get_int(raw, "population", DEFAULT_POPULATION, where, low=1) or DEFAULT_POPULATION
    if population > MAX_POPULATION:
        raise ConfigError(
            f"{where}.population: must be at most {MAX_POPULATION} trials trained at once, got {population}"
        )
    return population
