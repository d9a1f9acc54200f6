"""Data: read a CSV (or the embedded data set), check it, split it, and preprocess it for the network."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo.config.data_section import DataSettings
from hpo.data.preprocessing import (
    ColumnSpec,
    Preprocessor,
    fit_preprocessor,
    infer_columns,
    normalize_blanks,
    read_csv_kwargs,
)
from hpo.errors import DataError

__all__ = ["DEFAULT_SCALING", "Prepared", "PreparedData", "load_data", "read_csv_header", "split_rows"]

Label = str | int | bool
#: More feature columns than this is almost always a mistake (a transposed file, an index saved as columns).
MAX_FEATURES = 10_000
#: The numeric scaling when the search space does not set ``preprocessing.numeric``.
DEFAULT_SCALING = "standard"


@dataclass(frozen=True)
class Prepared:
    """The network's inputs for one numeric scaling: the fitted preprocessor and both splits as float32 arrays."""

    preprocessor: Preprocessor
    x_train: np.ndarray
    x_val: np.ndarray


@dataclass(frozen=True)
class PreparedData:
    """The checked data, split, with its preprocessing fitted on the training split (once per scaling, on demand).

    ``train_rows``, ``val_rows`` and ``dropped_rows`` are 0-based data rows of the file (line = row + 2).
    """

    features: pd.DataFrame  # the raw feature columns of the kept rows, indexed by data row
    y_train: np.ndarray
    y_val: np.ndarray
    columns: tuple[ColumnSpec, ...]
    labels: tuple[Label, Label]  # (negative, positive) in the file's own values
    train_rows: tuple[int, ...]
    val_rows: tuple[int, ...]
    source: str
    dropped_rows: tuple[int, ...] = ()  # rows left out because their target is blank
    _variants: dict[str, Prepared] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def prepared(self, scaling: str = DEFAULT_SCALING) -> Prepared:
        """The inputs under ``scaling``, fitted on the training split the first time it is asked for, then reused."""
        if scaling not in self._variants:
            train = self.features.loc[list(self.train_rows)]
            preprocessor = fit_preprocessor(train, self.columns, scaling=scaling, where=self.source)
            x_train, _ = preprocessor.transform(train, where=self.source)
            x_val, _ = preprocessor.transform(self.features.loc[list(self.val_rows)], where=self.source)
            self._variants[scaling] = Prepared(preprocessor, x_train, x_val)
        return self._variants[scaling]

    @property
    def n_features(self) -> int:
        """Inputs of the network (the same under every scaling)."""
        return self.prepared().preprocessor.n_outputs

    @property
    def x_train(self) -> np.ndarray:
        return self.prepared().x_train

    @property
    def x_val(self) -> np.ndarray:
        return self.prepared().x_val

    def describe_columns(self) -> list[dict[str, Any]]:
        """Per feature column: name, kind, blanks in the data, levels (categorical), and the network inputs it gives."""
        described = {d["name"]: d for d in self.prepared().preprocessor.describe()}
        return [
            {
                "name": c.name,
                "kind": c.kind,
                "missing": c.n_missing,
                "levels": c.n_levels,
                "inputs": len(described[c.name]["outputs"]),
            }
            for c in self.columns
        ]


def _line(row: int) -> int:
    """The 1-based line of the file holding data row ``row`` (0-based, after the header)."""
    return row + 2


def rows_text(rows: Sequence[int] | np.ndarray) -> str:
    """``line 7`` or ``lines 7, 9, 12, 20, 31 and 4 more`` for 0-based data rows."""
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
    """Read a CSV file with a header row, refusing what pandas would silently repair; blanks (``NA``, ``NaN``, empty
    and whitespace-only cells) are NaN."""
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
        frame = pd.read_csv(path, encoding="utf-8", on_bad_lines="error", **read_csv_kwargs())
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: is empty; a CSV with a header row and at least one data row is needed") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: rows do not match the header ({exc}); every row needs {len(header)} fields") from None
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return normalize_blanks(frame)


def _encode_labels(
    column: pd.Series, target: str, positive: Label | None, path: Path
) -> tuple[np.ndarray, tuple[Label, Label]]:
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


def _feature_names(frame: pd.DataFrame, settings: DataSettings) -> tuple[str, ...]:
    if settings.features is not None:
        return settings.features
    excluded = {settings.target, *settings.id_columns, *settings.drop}
    return tuple(str(c) for c in frame.columns if c not in excluded)


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
    """Read, check and split the data described by ``settings``; the preprocessing is fitted when first asked for.

    Rows whose target is blank are left out (their rows are in ``dropped_rows``). Every problem of the file is
    reported at once.

    Raises:
        DataError: naming the file and, for each problem, the column and up to five lines.
    """
    path = settings.path
    where = str(path)
    frame = read_table(path)
    problems: list[str] = []
    for kind, listed in (
        ("target", (settings.target,)),
        ("feature", settings.features or ()),
        ("id", settings.id_columns),
        ("categorical", settings.categorical),
        ("numeric", settings.numeric),
        ("drop", settings.drop),
    ):
        missing = [c for c in listed if c not in frame.columns]
        if missing:
            problems.append(f"{kind} column{'s' if len(missing) > 1 else ''} {missing[:5]} not in the file")
    if problems:
        raise DataError(
            f"{where}: {'; '.join(problems)}; its columns are {list(frame.columns)[:20]}. Fix data.* in the "
            "search-space file or the file's header"
        )
    blank_target = frame[settings.target].isna().to_numpy()
    dropped = np.flatnonzero(blank_target)
    kept = frame.loc[~blank_target]
    names = _feature_names(frame, settings)
    if not names:
        problems.append(f"no feature columns besides the target {settings.target!r}")
    if len(names) > MAX_FEATURES:
        problems.append(
            f"{len(names)} feature columns, hpo trains on at most {MAX_FEATURES}; list the columns to use under "
            "data.features, or reduce the file's columns first"
        )
    y = np.zeros(len(kept), dtype=np.float32)
    labels: tuple[Label, Label] = ("0", "1")
    if len(kept) == 0:
        problems.append(f"target column {settings.target!r} is blank in every row")
    else:
        try:
            y, labels = _encode_labels(kept[settings.target], settings.target, settings.positive_label, path)
            for cls, label in zip((0.0, 1.0), labels, strict=False):
                if int((y == cls).sum()) < 2:
                    problems.append(
                        f"class {label!r} of column {settings.target!r} has fewer than 2 rows; both the training and "
                        "the validation split need one of each class"
                    )
        except DataError as exc:
            problems.append(str(exc).removeprefix(f"{path}: "))
    columns: list[ColumnSpec] = []
    if names and len(names) <= MAX_FEATURES:
        try:
            columns = infer_columns(
                kept, features=names, categorical=settings.categorical, numeric=settings.numeric, where=where
            )
        except DataError as exc:
            problems.append(str(exc).removeprefix(f"{where}: "))
    if problems:
        if len(problems) == 1:
            raise DataError(f"{where}: {problems[0]}")
        numbered = " ".join(f"[{i}] {p}" for i, p in enumerate(problems, 1))
        raise DataError(f"{where}: {len(problems)} problems: {numbered}")
    train_pos, val_pos = split_rows(y, settings.validation_fraction, settings.split_seed)
    file_rows = kept.index.to_numpy()
    return PreparedData(
        features=kept.loc[:, list(names)],
        y_train=y[train_pos],
        y_val=y[val_pos],
        columns=tuple(columns),
        labels=labels,
        train_rows=tuple(int(r) for r in file_rows[train_pos]),
        val_rows=tuple(int(r) for r in file_rows[val_pos]),
        source=settings.source or where,
        dropped_rows=tuple(int(r) for r in dropped),
    )
