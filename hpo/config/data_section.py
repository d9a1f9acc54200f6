"""The ``data`` section of a search-space file: an embedded data set or a CSV file, its column types, the split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.config.yaml_doc import check_keys, get_int
from hpo.errors import ConfigError

__all__ = ["EMBEDDED_DATASETS", "DataSettings", "parse_data"]

#: Data sets shipped inside the package: name -> (file, target column, positive label).
EMBEDDED_DATASETS: dict[str, tuple[str, str, str]] = {
    "breast_cancer": ("breast_cancer.csv", "diagnosis", "malignant"),
}


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
    #: Held out from the whole search; None: 0.2 when the data has at least 500 labelled rows, else 0.
    test_fraction: float | None = None
    #: Stratified K-fold cross-validation of each trial (None: one train/validation split).
    cv_folds: int | None = None
    #: Column type overrides (otherwise inferred: text and booleans are categorical, numbers numeric).
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    #: Columns left out of the features (like id columns, but not carried to predictions).
    drop: tuple[str, ...] = ()


def _names(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key}: must be a list of column names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}.{key}: must not repeat a column, got {value!r}")
    return tuple(value)


def parse_data(raw: Mapping[str, Any], where: str) -> DataSettings:
    """Validate the ``data`` section (``where`` is ``<file>: data``): an embedded data set or a CSV file."""
    allowed = {
        "source",
        "path",
        "target",
        "positive_label",
        "features",
        "id_columns",
        "validation_fraction",
        "split_seed",
        "test_fraction",
        "cv_folds",
        "categorical",
        "numeric",
        "drop",
    }
    check_keys(raw, allowed, where)
    fraction = raw.get("validation_fraction", 0.2)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"{where}.validation_fraction: must be a number between 0 and 1 (exclusive), got {fraction!r}"
        )
    split_seed = get_int(raw, "split_seed", 0, where)
    test_fraction = raw.get("test_fraction")
    if test_fraction is not None and (
        isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1
    ):
        raise ConfigError(
            f"{where}.test_fraction: must be a number from 0 (no test split) up to 1 (exclusive), such as 0.2, "
            f"got {test_fraction!r}"
        )
    cv_folds = get_int(raw, "cv_folds", None, where, low=2)
    positive = raw.get("positive_label")
    if positive is not None and not isinstance(positive, (str, int, bool)):
        raise ConfigError(f"{where}.positive_label: must be one of the target's two values, got {positive!r}")
    features = _names(raw, "features", where)
    id_columns = _names(raw, "id_columns", where) or ()
    categorical = _names(raw, "categorical", where) or ()
    numeric = _names(raw, "numeric", where) or ()
    drop = _names(raw, "drop", where) or ()
    both = sorted(set(categorical) & set(numeric))
    if both:
        raise ConfigError(
            f"{where}: column {both[0]!r} is listed under both categorical and numeric; keep it in one of them"
        )
    for key, names in (("categorical", categorical), ("numeric", numeric)):
        left_out = sorted(set(names) & {*drop, *id_columns})
        if left_out:
            raise ConfigError(
                f"{where}.{key}: column {left_out[0]!r} is also under drop or id_columns, so it is not a feature; "
                "remove it from one of the lists"
            )
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
        path = str(Path(__file__).parents[1] / "data" / "datasets" / filename)
        positive = default_positive if positive is None else positive
    for column in (*(features or ()), *id_columns, *categorical, *numeric, *drop):
        if column == target:
            raise ConfigError(
                f"{where}: the target column {target!r} cannot also be a feature, id, categorical, numeric or drop "
                "column; remove it from those lists"
            )
    return DataSettings(
        path=Path(path),
        target=target,
        source=source,
        positive_label=positive,
        features=features,
        id_columns=id_columns,
        validation_fraction=float(fraction),
        split_seed=split_seed or 0,
        test_fraction=None if test_fraction is None else float(test_fraction),
        cv_folds=cv_folds,
        categorical=categorical,
        numeric=numeric,
        drop=drop,
    )
