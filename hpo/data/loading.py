"""Data: read a CSV (or the embedded data set), check it, split it and standardise it."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.config.data_section import DataSettings
from hpo.errors import DataError

__all__ = ["PreparedData", "Standardization", "load_data", "read_csv_header", "split_rows"]

Label = str | int | bool
#: More feature columns than this is almost always a mistake (a transposed file, an index saved as columns).
MAX_FEATURES = 10_000


@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and standard deviation fitted on the training split (float64)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardise raw feature values: ``((x - mean) / std)`` in float64, returned as float32."""
        return ((np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


@dataclass(frozen=True)
class PreparedData:
    """Standardised float32 arrays of both splits (``torch.from_numpy`` shares them), and what reproduces them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: tuple[str, ...]
    standardization: Standardization
    labels: tuple[Label, Label]  # (negative, positive) in the file's own values
    train_rows: tuple[int, ...]
    val_rows: tuple[int, ...]
    source: str

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def _line(row: int) -> int:
    """The 1-based line of the file holding data row ``row`` (0-based, after the header)."""
    return row + 2


def _rows_text(rows: Sequence[int] | np.ndarray) -> str:
    shown = ", ".join(str(_line(int(r))) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"line{'s' if len(rows) > 1 else ''} {shown}{more}"


def read_csv_header(path: Path, *, missing: str, folder: str, empty: str) -> list[str]:
    """The header row of the CSV file ``path``.

    Raises:
        DataError: no such file, a folder, not UTF-8, an unreadable or empty header; ``missing``, ``folder`` and
            ``empty`` are the messages' second halves, saying how to fix it where the file came from.
    """
    if not path.exists():
        raise DataError(f"{path}: {missing}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; {folder}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: the header line cannot be read as CSV ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{path}: is empty; {empty}")
    return header


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV file with a header row, refusing what pandas would silently repair."""
    header = read_csv_header(
        path,
        missing="no such data file; check data.path (relative paths start in the current folder)",
        folder="data.path must be a CSV file",
        empty="a CSV with a header row and at least one data row is needed",
    )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears more than once in the header; rename one of them")
        seen.add(name)
    try:
        frame = pd.read_csv(path, encoding="utf-8", on_bad_lines="error", low_memory=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: is empty; a CSV with a header row and at least one data row is needed") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: rows do not match the header ({exc}); every row needs {len(header)} fields") from None
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def _encode_labels(
    column: pd.Series, target: str, positive: Label | None, path: Path
) -> tuple[np.ndarray, tuple[Label, Label]]:
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{path}: target column {target!r} has missing values at {_rows_text(missing)}; fill or drop them"
        )
    values = column.to_numpy()
    distinct = pd.unique(column)
    if len(distinct) != 2:
        counts = column.value_counts().head(6).to_dict()
        raise DataError(
            f"{path}: target column {target!r} must have exactly two classes for a binary classifier, "
            f"found {len(distinct)} ({counts}); recode it to two values"
        )
    items: list[Label] = [v.item() if hasattr(v, "item") else v for v in distinct]
    if positive is None:
        if all(isinstance(v, bool) for v in items):
            positive = True
        elif set(items) == {0, 1}:
            positive = 1
        elif all(isinstance(v, str) for v in items):
            positive = sorted(items)[1]  # type: ignore[type-var]
        else:
            raise DataError(
                f"{path}: target column {target!r} has the values {items}; labels must be 0/1, booleans or two "
                "strings. Set data.positive_label to say which value is the positive class"
            )
    matches = [v for v in items if v == positive or str(v) == str(positive)]
    if not matches:
        raise DataError(f"{path}: data.positive_label {positive!r} is not a value of column {target!r} ({items})")
    pos = matches[0]
    neg = next(v for v in items if v is not pos and v != pos)
    encoded = np.array([v == pos for v in values], dtype=np.float32)
    return encoded, (neg, pos)


def _features(frame: pd.DataFrame, settings: DataSettings, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    names = settings.features
    if names is None:
        excluded = {settings.target, *settings.id_columns}
        names = tuple(str(c) for c in frame.columns if c not in excluded)
    if not names:
        raise DataError(f"{path}: has no feature columns besides the target {settings.target!r}")
    if len(names) > MAX_FEATURES:
        raise DataError(
            f"{path}: has {len(names)} feature columns; hpo trains on at most {MAX_FEATURES}. List the columns to use "
            "under data.features, or reduce the file's columns first"
        )
    bad_types = [
        n for n in names if not (pd.api.types.is_numeric_dtype(frame[n]) or pd.api.types.is_bool_dtype(frame[n]))
    ]
    if bad_types:
        example = frame[bad_types[0]].dropna()
        sample = f" (e.g. {example.iloc[0]!r})" if len(example) else ""
        raise DataError(
            f"{path}: feature column{'s' if len(bad_types) > 1 else ''} {bad_types[:5]} must be numeric but hold "
            f"text{sample}; encode them as numbers, or list them under data.id_columns to leave them out"
        )
    values = frame.loc[:, list(names)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        col = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = np.flatnonzero(bad[:, col])
        kind = "missing values" if np.isnan(values[rows[0], col]) else "infinite values"
        raise DataError(
            f"{path}: feature column {names[col]!r} has {kind} at {_rows_text(rows)}; fill or drop those rows"
        )
    return values, names


def split_rows(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified train/validation split of row indices, the same for the same labels, fraction and seed."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in (0.0, 1.0):
        rows = np.flatnonzero(y == cls)
        rows = rows[rng.permutation(len(rows))]
        n_val = min(max(1, round(len(rows) * fraction)), len(rows) - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_data(settings: DataSettings) -> PreparedData:
    """Read, check, split and standardise the data described by ``settings``.

    Raises:
        DataError: naming the file, the column and the rows of the first problem found.
    """
    path = settings.path
    frame = read_table(path)
    for kind, columns in (
        ("target", (settings.target,)),
        ("feature", settings.features or ()),
        ("id", settings.id_columns),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{path}: {kind} column {missing[0]!r} is not in the file; its columns are {list(frame.columns)[:20]}"
            )
    y, labels = _encode_labels(frame[settings.target], settings.target, settings.positive_label, path)
    x, names = _features(frame, settings, path)
    for cls, label in zip((0.0, 1.0), labels, strict=False):
        if int((y == cls).sum()) < 2:
            raise DataError(
                f"{path}: class {label!r} of column {settings.target!r} has fewer than 2 rows; both the training and "
                "the validation split need one of each class"
            )
    train_rows, val_rows = split_rows(y, settings.validation_fraction, settings.split_seed)
    mean = x[train_rows].mean(axis=0)
    std = x[train_rows].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant column stays constant (0) instead of dividing by zero
    stats = Standardization(tuple(map(float, mean)), tuple(map(float, std)))
    scaled = stats.apply(x)
    return PreparedData(
        x_train=scaled[train_rows],
        y_train=y[train_rows],
        x_val=scaled[val_rows],
        y_val=y[val_rows],
        feature_names=names,
        standardization=stats,
        labels=labels,
        train_rows=tuple(map(int, train_rows)),
        val_rows=tuple(map(int, val_rows)),
        source=settings.source or str(path),
    )
