"""Checks on the rows given to a predictor: the right columns, numbers only, no missing or infinite values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hpo.errors import DataError

__all__ = ["ValueProblems", "check_columns", "feature_values", "select_features"]

_SHOWN = 5


def _listing(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_columns(columns: Sequence[object], features: Sequence[str], ignored: Iterable[str], where: str) -> None:
    """Refuse a header that lacks a feature, repeats a column or has columns the model does not know.

    Args:
        columns: the column names of the input.
        features: the model's features.
        ignored: other columns that may be present and are left out (id columns, the target).
        where: the start of the message (a file, or ``predict_proba``).

    Raises:
        DataError: naming the missing, repeated or unknown columns.
    """
    names = [str(c) for c in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{where}: column{'s' if len(repeated) > 1 else ''} {_listing(repeated)} appear more than "
            "once; rename or drop the copies"
        )
    missing = [f for f in features if f not in names]
    known = {*features, *ignored}
    extra = [n for n in names if n not in known]
    if missing:
        hint = f"; the input has the unknown columns {_listing(extra)} (renamed?)" if extra else ""
        raise DataError(
            f"{where}: missing feature column{'s' if len(missing) > 1 else ''} {_listing(missing)}{hint}. The model "
            f"needs its {len(features)} training features by name: {_listing(list(features), 40)}"
        )
    if extra:
        allowed = sorted(set(ignored))
        also = f" (besides the features it accepts {_listing(allowed)})" if allowed else ""
        raise DataError(
            f"{where}: column{'s' if len(extra) > 1 else ''} {_listing(extra)} {'are' if len(extra) > 1 else 'is'} "
            f"not a feature of this model{also}; drop {'them' if len(extra) > 1 else 'it'} from the input"
        )


def select_features(x: object, features: Sequence[str], ignored: Iterable[str], where: str) -> pd.DataFrame:
    """The feature columns of ``x`` in training order, as a DataFrame.

    A DataFrame is matched by column name (see :func:`check_columns`); anything else (a numpy array, a list of rows,
    a CPU tensor) must be 2-D with the features as columns in training order.
    """
    if isinstance(x, pd.DataFrame):
        check_columns(list(x.columns), features, ignored, where)
        return x.loc[:, list(features)]
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{where}: expected a DataFrame or a 2-D array of rows, got {type(x).__name__} ({exc})"
        ) from None
    if array.ndim != 2 or array.shape[1] != len(features):
        raise DataError(
            f"{where}: expected rows of {len(features)} features in training order ({_listing(list(features), 3)}), "
            f"got an array of shape {array.shape}; pass a DataFrame to match columns by name"
        )
    if array.dtype.kind not in "biuf" and array.dtype != object and array.dtype.kind != "U":
        raise DataError(f"{where}: expected numbers, got an array of dtype {array.dtype}")
    return pd.DataFrame(array, columns=list(features))


@dataclass
class ValueProblems:
    """Bad values found so far: (column, problem) -> the first rows it occurs in and how many rows in all."""

    found: dict[tuple[str, str], tuple[list[int], int]] = field(default_factory=dict)

    def add(self, column: str, problem: str, rows: np.ndarray) -> None:
        shown, total = self.found.get((column, problem), ([], 0))
        self.found[(column, problem)] = (shown + [int(r) for r in rows[: _SHOWN - len(shown)]], total + len(rows))

    def __bool__(self) -> bool:
        return bool(self.found)

    def message(
        self, where: str, row_word: str = "row", row_base: int = 0, outcome: str = "nothing was predicted"
    ) -> str:
        """One paragraph naming each bad column and its first rows (``row_base`` is added to row positions)."""
        parts = []
        for (column, problem), (shown, total) in self.found.items():
            rows = ", ".join(str(r + row_base) for r in shown)
            more = f" and {total - len(shown)} more" if total > len(shown) else ""
            word = row_word if total == 1 else f"{row_word}s"
            parts.append(f"column {column!r} {problem} at {word} {rows}{more}")
        return f"{where}: {'; '.join(parts)}. Every feature must be a finite number; fix or drop those rows ({outcome})"


def feature_values(frame: pd.DataFrame, problems: ValueProblems, row_offset: int = 0) -> np.ndarray:
    """The float64 values of ``frame`` (features in order); bad values are added to ``problems``.

    Rows are recorded as ``row_offset + position``.
    """
    values = np.empty(frame.shape, dtype=np.float64)
    for j, name in enumerate(frame.columns):
        column = frame.iloc[:, j]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            coerced = pd.to_numeric(column, errors="coerce")
            text = np.flatnonzero(coerced.isna().to_numpy() & column.notna().to_numpy())
            if len(text):
                example = column.iloc[int(text[0])]
                problems.add(str(name), f"holds text (e.g. {str(example)[:30]!r})", text + row_offset)
            numbers = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.flatnonzero(np.isnan(numbers) & column.isna().to_numpy())
        if len(missing):
            problems.add(str(name), "has missing values", missing + row_offset)
        infinite = np.flatnonzero(np.isinf(numbers))
        if len(infinite):
            problems.add(str(name), "has infinite values", infinite + row_offset)
        values[:, j] = numbers
    return values
