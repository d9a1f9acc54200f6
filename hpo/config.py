"""Search-space files: YAML parsed and validated into frozen dataclasses, before anything trains."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hpo.algorithms import (
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    PRUNERS,
    SAMPLERS,
    AlgorithmSettings,
    build_pruner,
    build_sampler,
    parse_algorithm,
)
from hpo.constraints import Constraint, parse_constraints
from hpo.errors import ConfigError, key_path
from hpo.inference_settings import InferenceSettings, parse_inference
from hpo.metrics import METRICS, MODEL_METRICS
from hpo.objectives import ObjectiveSpec, parse_objectives
from hpo.paths import validate_study_name
from hpo.space import SearchSpace, parse_search_space

__all__ = [
    "EMBEDDED_DATASETS",
    "DataSettings",
    "Experiment",
    "StudySettings",
    "TrainingSettings",
    "load_experiment",
    "parse_experiment",
]

#: Data sets shipped inside the package: name -> (file, target column, positive label).
EMBEDDED_DATASETS: dict[str, tuple[str, str, str]] = {
    "breast_cancer": ("breast_cancer.csv", "diagnosis", "malignant"),
}
_MAX_FILE_BYTES = 1 << 20
_MAX_DEPTH = 20
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


@dataclass(frozen=True)
class DataSettings:
    """Where the rows come from and how they are split."""

    path: Path
    target: str
    source: str | None = None
    positive_label: str | int | bool | None = None
    features: tuple[str, ...] | None = None
    id_columns: tuple[str, ...] = ()
    validation_fraction: float = 0.2
    split_seed: int = 0


@dataclass(frozen=True)
class TrainingSettings:
    """Fixed training settings shared by every trial."""

    max_epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    accelerator: str = "cpu"
    early_stopping_patience: int | None = None


@dataclass(frozen=True)
class Experiment:
    """One search-space file, validated."""

    file: Path
    study: StudySettings
    data: DataSettings
    training: TrainingSettings
    space: SearchSpace
    inference: InferenceSettings = InferenceSettings()  # noqa: RUF009 - frozen, so sharing it is safe

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


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate a search-space file.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks a rule; the message names the file and key path.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise ConfigError(f"{path}: is {size} bytes; a search-space file may be at most 1 MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such search-space file; pass the path of a YAML file such as search_spaces/default.yaml"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; pass the path of a YAML search-space file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_experiment(_load_yaml(text, path), path)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases, so that a small file cannot expand to a huge document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed in search-space files; "
                "write the value out"
            )
        return super().compose_node(parent, index)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: is not valid YAML{where}: {problem}. Fix the syntax there.") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: is nested too deeply to be a search-space file") from None


def _check_keys(raw: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = key_path(where, key)
            raise ConfigError(f"{at}: unknown key{hint}; allowed keys are {sorted(allowed)}")


def _mapping(raw: object, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping (key: value lines), got {type(raw).__name__} {raw!r}")
    return raw


def _depth(value: object, limit: int) -> int:
    if limit <= 0:
        return 1
    if isinstance(value, Mapping):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def _int(raw: Mapping[str, Any], key: str, default: int | None, where: str, low: int | None = None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{where}.{key}: must be >= {low}, got {value!r}")
    return value


def parse_experiment(raw: object, file: Path) -> Experiment:
    """Validate the parsed YAML of a search-space file (see :func:`load_experiment`)."""
    where = f"{file}:"
    if raw is None:
        raise ConfigError(f"{file}: is empty; see search_spaces/default.yaml for a complete example")
    if _depth(raw, _MAX_DEPTH) > _MAX_DEPTH - 1:
        raise ConfigError(f"{file}: is nested too deeply to be a search-space file")
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{file}: must be a mapping with the sections study, data, training, params and inference, "
            f"got {type(raw).__name__}"
        )
    _check_keys(raw, {"study", "data", "training", "params", "inference"}, where)
    space = parse_search_space(raw.get("params"), f"{where} params")
    study = _parse_study(_mapping(raw.get("study"), f"{where} study"), file)
    data = _parse_data(_mapping(raw.get("data"), f"{where} data"), f"{where} data")
    training = _parse_training(_mapping(raw.get("training"), f"{where} training"), f"{where} training")
    inference = parse_inference(raw.get("inference"), f"{where} inference")
    if data.source is None and not data.path.is_absolute() and not data.path.exists():
        beside_file = file.parent / data.path
        if beside_file.exists():
            data = replace(data, path=beside_file)
    return Experiment(file, study, data, training, space, inference)


def _parse_study(raw: Mapping[str, Any], file: Path) -> StudySettings:
    where = f"{file}: study"
    _check_keys(
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
    constraints = parse_constraints(raw.get("constraints"), f"{where}.constraints")
    n_trials = _int(raw, "n_trials", None, where, low=1)
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
    heartbeat = _int(raw, "heartbeat_interval", 10, where, low=1) or 10
    grace = _int(raw, "grace_period", max(30, 3 * heartbeat), where, low=1) or 30
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
    )


def _names(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key}: must be a list of column names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}.{key}: must not repeat a column, got {value!r}")
    return tuple(value)


def _parse_data(raw: Mapping[str, Any], where: str) -> DataSettings:
    allowed = {
        "source",
        "path",
        "target",
        "positive_label",
        "features",
        "id_columns",
        "validation_fraction",
        "split_seed",
    }
    _check_keys(raw, allowed, where)
    fraction = raw.get("validation_fraction", 0.2)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"{where}.validation_fraction: must be a number between 0 and 1 (exclusive), got {fraction!r}"
        )
    split_seed = _int(raw, "split_seed", 0, where)
    positive = raw.get("positive_label")
    if positive is not None and not isinstance(positive, (str, int, bool)):
        raise ConfigError(f"{where}.positive_label: must be one of the target's two values, got {positive!r}")
    features = _names(raw, "features", where)
    id_columns = _names(raw, "id_columns", where) or ()
    if "path" in raw and "source" in raw:
        raise ConfigError(f"{where}: give either source (an embedded data set) or path (a CSV file), not both")
    if "path" in raw:
        path, target = raw["path"], raw.get("target")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.path: must be the path of a CSV file, got {path!r}")
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{where}.target: must name the label column of {path}, got {target!r}")
        source = None
    else:
        source = raw.get("source", "breast_cancer")
        if not isinstance(source, str) or source not in EMBEDDED_DATASETS:
            raise ConfigError(
                f"{where}.source: must be one of the embedded data sets {sorted(EMBEDDED_DATASETS)}, got {source!r}; "
                "use path and target for your own CSV"
            )
        if "target" in raw:
            raise ConfigError(f"{where}.target: only applies with path; the embedded data sets know their target")
        filename, target, default_positive = EMBEDDED_DATASETS[source]
        path = str(Path(__file__).parent / "datasets" / filename)
        positive = default_positive if positive is None else positive
    for column in (*(features or ()), *id_columns):
        if column == target:
            raise ConfigError(f"{where}: the target column {target!r} cannot also be a feature or id column")
    return DataSettings(Path(path), target, source, positive, features, id_columns, float(fraction), split_seed or 0)


def _parse_training(raw: Mapping[str, Any], where: str) -> TrainingSettings:
    _check_keys(raw, {"max_epochs", "batch_size", "seed", "accelerator", "early_stopping_patience"}, where)
    accelerator = raw.get("accelerator", "cpu")
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"{where}.accelerator: must be one of {list(ACCELERATORS)}, got {accelerator!r}")
    return TrainingSettings(
        max_epochs=_int(raw, "max_epochs", 30, where, low=1) or 30,
        batch_size=_int(raw, "batch_size", 64, where, low=1) or 64,
        seed=_int(raw, "seed", 0, where) or 0,
        accelerator=accelerator,
        early_stopping_patience=_int(raw, "early_stopping_patience", None, where, low=1),
    )
