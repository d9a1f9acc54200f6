"""Preprocessing of raw tabular features: infer column kinds, fit on the training split, save as JSON, apply with numpy.

A :class:`Preprocessor` turns a DataFrame of raw feature columns (numbers, text, booleans, blanks) into a finite
float32 matrix for the network. Its fitted state is plain JSON (:meth:`Preprocessor.to_json`), and applying it needs
numpy and pandas only, so a saved model predicts the same numbers anywhere, bit for bit.

Decisions (measured with ``python -m bench.preprocessing``, 1M rows x 50 columns):

- **Blanks.** A cell is blank when it is NaN/None/NA or its text, stripped of surrounding whitespace, is one of
  :data:`BLANK_STRINGS` (pandas' defaults without the exotic ``-1.#IND`` family). :func:`read_csv_kwargs` makes
  ``pd.read_csv`` read exactly those as NaN; :func:`normalize_blanks` also catches whitespace-only cells.
- **Levels are canonical strings**, so that a level means the same in a training DataFrame and in a prediction chunk
  that pandas typed differently: the text is stripped of surrounding whitespace (case is kept); ``true``/``false``
  in any case and booleans become ``"true"``/``"false"``; anything that reads as a finite number becomes the number's
  shortest text: integers below 2**53 without a decimal point (``3``, ``3.0``, ``"3"``, ``" 03 "`` and ``"3e0"``
  are all ``"3"``), other numbers as numpy prints a float64 (``"0.5"``, ``"1e+20"``); an integer of 2**53 or more
  written in digits keeps its digits. Blanks are the level ``"<blank>"``. Canonicalisation runs on the distinct
  values of a column (``pd.factorize``), never per row.
- **Numeric columns**: blanks are imputed with the training median; a column that had blanks in the training data
  also gets a 0/1 ``name:missing`` output. Statistics are of the non-blank training values (float64). Scalings
  (:data:`SCALINGS`): ``standard`` (x - mean) / std (std 1 for a constant column); ``robust`` (x - median) / IQR
  (the std when the IQR is 0, 1 for a constant column) followed by RealMLP's smooth clipping
  x / sqrt(1 + (x / 3)**2), so outputs lie in (-3, 3); ``quantile`` maps through up to :data:`MAX_QUANTILES` stored
  quantiles of the training values to standard normal scores. The scores of the quantile levels are computed when
  fitting (levels clipped to [0.5/n, 1 - 0.5/n] for n training values) and interpolated linearly when applying, so
  prediction needs no scipy; ties and constant columns map to the middle of their run of scores (0 for a constant
  column), as in scikit-learn's QuantileTransformer.
- **Clipping bound.** Before the float32 cast, standard and robust values are clipped to
  [-:data:`OUTPUT_BOUND`, +:data:`OUTPUT_BOUND`] = [-1e6, 1e6] (robust values are then smooth-clipped); quantile
  values are bounded by construction. Infinite inputs and values such as 1e308 therefore give finite outputs, and
  :class:`TransformCounts` counts them as ``clipped``. Infinite values in the training data are refused.
- **Categorical columns**: a blank is the level ``"<blank>"``. Booleans and columns with exactly two levels and no
  blanks in the training data are one 0/1 output ``name=<second level>`` (``true`` for booleans; the other level is
  0; an unseen level or a blank at prediction gets 0.5, halfway). Other columns are one-hot: one output per level
  seen at least ``min_level_count`` times (default :data:`DEFAULT_MIN_LEVEL_COUNT` = 5 rows: a level seen fewer
  times cannot be learned and would only be memorised), at most ``max_one_hot`` of them (default
  :data:`DEFAULT_MAX_ONE_HOT` = 32, the most frequent, ties in text order), plus ``name=<other>`` for rare levels,
  the levels beyond the cap and levels unseen in training.
- **High cardinality.** The output is dense float32 (what the network trains on), so every one-hot output costs
  4 bytes a row: uncapped, a column of 20,000 levels seen 50 times each would add 80 GB to a 1M-row output. On the
  benchmark frame (1M rows, ten text columns of 3..2000 levels, 40 numeric columns) the cap of 32 gives 254
  categorical outputs and a 1.24 GiB output (334 columns); 64 would give 446 (1.96 GiB), 128 803 (3.29 GiB) and no
  cap 5,368 (20.3 GiB). No frequency encoding: it needs the count of every level in the saved JSON (a whole column
  for an id-like one), and the frequent levels already have their own outputs. Model files store the kept levels,
  and up to :data:`MAX_STORED_OTHER_LEVELS` = 1000 of the other training levels (most frequent first) so that
  prediction can tell a rare level from an unseen one; beyond that, rarer training levels count as unseen. Levels
  are stored as text: leave id-like columns out of the features.
- **Speed.** Everything is vectorised over rows: numbers with numpy, text through ``pd.factorize`` on the column and
  canonicalisation of its distinct values only; the output is filled in blocks of 2048 rows, which is several times
  faster than writing whole columns of a wide row-major array. On the benchmark frame (2 cores, two runs), fit is
  11-14x and transform 2.3-2.9x faster than the equivalent scikit-learn ColumnTransformer, with 2.6x less peak
  memory.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from statistics import NormalDist
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from hpo.errors import ConfigError, DataError, WeightsError

__all__ = [
    "BLANK_LEVEL",
    "BLANK_STRINGS",
    "DEFAULT_MAX_ONE_HOT",
    "DEFAULT_MIN_LEVEL_COUNT",
    "MAX_QUANTILES",
    "MAX_STORED_OTHER_LEVELS",
    "OTHER_LEVEL",
    "OUTPUT_BOUND",
    "SCALINGS",
    "CategoricalColumn",
    "ColumnCounts",
    "ColumnSpec",
    "NumericColumn",
    "Preprocessor",
    "TransformCounts",
    "fit_preprocessor",
    "infer_columns",
    "normalize_blanks",
    "read_csv_kwargs",
]

#: Cell texts (after stripping surrounding whitespace) that are blanks; whitespace-only cells strip to "".
BLANK_STRINGS: frozenset[str] = frozenset(
    {"", "#N/A", "#NA", "<NA>", "N/A", "NA", "NULL", "NaN", "-NaN", "nan", "-nan", "None", "n/a", "null"}
)
SCALINGS = ("standard", "robust", "quantile")
#: Standard and robust values are clipped to [-OUTPUT_BOUND, OUTPUT_BOUND] before the float32 cast.
OUTPUT_BOUND = 1e6
#: The scale of RealMLP's smooth clipping x / sqrt(1 + (x / c)**2) after robust scaling.
SMOOTH_CLIP = 3.0
MAX_QUANTILES = 1000
DEFAULT_MIN_LEVEL_COUNT = 5
DEFAULT_MAX_ONE_HOT = 32
MAX_STORED_OTHER_LEVELS = 1000
BLANK_LEVEL = "<blank>"
OTHER_LEVEL = "<other>"

_FORMAT = "hpo.preprocessing"
_VERSION = 1
_BLOCK_ROWS = 2048  # rows of the output filled at a time (see _fill)
_SHOWN = 5
_EXACT_INTEGERS = 2.0**53
_HUGE = 1e150  # statistics of columns with larger magnitudes are computed on values scaled down, to avoid overflow
_NUMBER_START = list("0123456789+-.iI")


def read_csv_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``pd.read_csv`` (also with ``chunksize``) that read exactly :data:`BLANK_STRINGS` as NaN.

    Whitespace-only cells are not caught by pandas; pass the frame through :func:`normalize_blanks` (the
    preprocessor itself treats them as blanks either way).
    """
    return {"keep_default_na": False, "na_values": sorted(BLANK_STRINGS), "low_memory": False}


@dataclass(frozen=True)
class _Distinct:
    """What the distinct values of a column are; one entry per value, plus a last entry for pandas' NaN code -1."""

    level: np.ndarray  # object: the canonical level text
    number: np.ndarray  # float64: the value as a number (booleans 1/0, infinities kept), NaN for blanks and text
    blank: np.ndarray  # bool
    boolean: np.ndarray  # bool
    text: np.ndarray  # bool: not blank, not a boolean and not a number


def _number_levels(x: np.ndarray) -> np.ndarray:
    """Canonical texts of float64 numbers: integers below 2**53 without a decimal point, others as numpy prints them."""
    out = np.empty(len(x), dtype=object)
    integral = (x == np.trunc(x)) & (np.abs(x) < _EXACT_INTEGERS)
    out[integral] = x[integral].astype(np.int64).astype(str)
    out[~integral] = x[~integral].astype(str)
    return out


def _parse_distinct(uniques: object) -> _Distinct:
    """Canonicalise the distinct values of a column (as returned by ``pd.factorize``), see the module docstring."""
    values = np.asarray(uniques)
    n = len(values)
    none = np.zeros(n, dtype=bool)
    if values.dtype.kind == "b":
        number = values.astype(np.float64)
        level = np.where(values, "true", "false").astype(object)
        blank, boolean, text = none, ~none, none
    elif values.dtype.kind in "iu":
        number = values.astype(np.float64)
        level = values.astype(str).astype(object)
        blank, boolean, text = none, none, none
    elif values.dtype.kind == "f":
        number = values.astype(np.float64)
        blank = np.isnan(number)
        level = _number_levels(number)
        boolean, text = none, none
    else:
        stripped = pd.Series(values, dtype=object).astype(str).str.strip()
        blank = stripped.isin(sorted(BLANK_STRINGS)).to_numpy()
        lower = stripped.str.lower()
        is_true = (lower == "true").to_numpy()
        is_false = (lower == "false").to_numpy()
        boolean = is_true | is_false
        number = np.full(n, np.nan)
        candidates = ~(blank | boolean) & stripped.str[:1].isin(_NUMBER_START).to_numpy()
        if candidates.any():
            parsed = pd.to_numeric(stripped[candidates], errors="coerce")
            number[candidates] = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        number[is_true] = 1.0
        number[is_false] = 0.0
        level = stripped.to_numpy(dtype=object).copy()
        finite = np.isfinite(number) & ~boolean
        # integers too large for float64 to hold exactly keep their digits, so that distinct ids stay distinct
        shown = finite & ~((number == np.trunc(number)) & (np.abs(number) >= _EXACT_INTEGERS))
        level[shown] = _number_levels(number[shown])
        level[is_true] = "true"
        level[is_false] = "false"
        text = ~(blank | boolean) & np.isnan(number)
    level = np.where(blank, BLANK_LEVEL, level).astype(object)
    return _Distinct(
        level=np.append(level, BLANK_LEVEL).astype(object),
        number=np.append(number, np.nan),
        blank=np.append(blank, True),
        boolean=np.append(boolean, False),
        text=np.append(text, False),
    )


def _factorize(series: pd.Series) -> tuple[np.ndarray, _Distinct]:
    """Per-row codes into the distinct values of ``series`` (NaN-like cells: -1, the last entry) and their meaning."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes, _parse_distinct(uniques)


def _is_plain_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """The column as float64 (NaN for blanks and text; booleans 1/0) and the rows holding text (None: no text)."""
    if _is_plain_numeric(series) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    codes, distinct = _factorize(series)
    text_rows = distinct.text[codes] if distinct.text.any() else None
    return distinct.number[codes], text_rows


def normalize_blanks(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` in which text cells that are blanks (see :data:`BLANK_STRINGS`, whitespace-only) are NaN.

    A text column whose other cells all read as numbers becomes float64, as ``pd.read_csv`` would have read it without
    the whitespace-only cells. Other columns are returned unchanged.
    """
    result = frame.copy()
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        if _is_plain_numeric(series) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        codes, distinct = _factorize(series)
        if not distinct.blank[:-1].any():
            continue
        present = ~distinct.blank
        if present[:-1].any() and not (distinct.text | distinct.boolean)[present].any():
            result.isetitem(i, pd.Series(distinct.number[codes], index=frame.index))
        else:
            result.isetitem(i, series.where(~distinct.blank[codes]))
    return result


def _lines(lines: np.ndarray) -> str:
    shown = ", ".join(str(int(line)) for line in lines[:_SHOWN])
    more = f" and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _raise_problems(where: str, problems: list[str], fix: str) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(f"{where}: {problems[0]}. {fix}")
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise DataError(f"{where}: {len(problems)} problems with the feature columns: {listed}. {fix}")


def _column_problems(frame: pd.DataFrame, names: Iterable[str]) -> tuple[list[str], set[str]]:
    """Problems of feature columns that are absent or repeated, and the names of those columns."""
    counts = pd.Series([str(c) for c in frame.columns]).value_counts()
    wanted = list(names)
    missing = [n for n in wanted if n not in counts.index]
    repeated = [n for n in wanted if counts.get(n, 0) > 1]
    problems = []
    if missing:
        extra = [str(c) for c in frame.columns if str(c) not in set(wanted)]
        hint = f" (the data has the columns {_names(extra)} besides the features)" if extra else ""
        problems.append(f"missing feature column{'s' if len(missing) > 1 else ''} {_names(missing)}{hint}")
    if repeated:
        plural = len(repeated) > 1
        problems.append(
            f"column{'s' if plural else ''} {_names(repeated)} {'appear' if plural else 'appears'} more than once; "
            "rename or drop the copies"
        )
    return problems, {*missing, *repeated}


def _example(series: pd.Series, rows: np.ndarray) -> str:
    return repr(series.iloc[int(rows[0])])[:40]


@dataclass(frozen=True)
class ColumnSpec:
    """One feature column as inferred from the data.

    Attributes:
        name: the column's name.
        kind: ``"numeric"`` or ``"categorical"``.
        n_missing: blank cells in the data it was inferred from.
        n_levels: for categorical columns, the distinct non-blank levels (canonical texts); None for numeric ones.
    """

    name: str
    kind: str
    n_missing: int
    n_levels: int | None


def infer_columns(
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    where: str,
) -> list[ColumnSpec]:
    """Decide which features are numeric and which categorical.

    Booleans and text are categorical, numbers numeric (also numbers stored as text); ``categorical`` and ``numeric``
    override that. A column forced numeric may hold numbers, booleans and blanks.

    Args:
        frame: the data, row 0 being line 2 of its file (line 1 the header).
        features: the feature columns, in order.
        categorical: features to treat as categorical whatever they hold.
        numeric: features to treat as numeric; text in them is a problem.
        where: the start of error messages (the file name).

    Returns:
        One spec per feature, in the order of ``features``.

    Raises:
        DataError: listing every problem at once: absent or repeated columns, a column listed twice or not a feature,
            all-blank columns, text in a column forced numeric, infinite numbers, dates (up to five lines each).
    """
    problems, absent = _column_problems(frame, features)
    wanted = set(features)
    repeated = sorted(name for name, count in Counter(features).items() if count > 1)
    if repeated:
        problems.append(f"feature{'s' if len(repeated) > 1 else ''} {_names(repeated)} listed more than once")
    both = sorted(set(categorical) & set(numeric))
    if both:
        problems.append(f"{_names(both)} listed both as numeric and as categorical; keep one")
    for label, names in (("categorical", categorical), ("numeric", numeric)):
        unknown = [n for n in names if n not in wanted]
        if unknown:
            problems.append(f"{_names(unknown)} listed as {label} but not a feature")
    forced_categorical, forced_numeric = set(categorical), set(numeric)
    specs = []
    for name in dict.fromkeys(features):
        if name in absent:
            continue
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype) or isinstance(series.dtype, pd.PeriodDtype):
            problems.append(
                f"column {name!r} holds dates ({series.dtype}); convert them to numbers (such as days since a date) "
                "or to text"
            )
            continue
        if name not in forced_numeric and (name in forced_categorical or not _is_plain_numeric(series)):
            codes, distinct = _factorize(series)
            present = np.bincount(codes + 1, minlength=len(distinct.level)) > 0
            present = np.append(present[1:], present[0])  # the NaN code -1 is the last entry, as in _Distinct
            values = present & ~distinct.blank
            if not values.any():
                problems.append(f"column {name!r} is blank in all {len(series)} rows; fill it or drop it")
                continue
            looks_numeric = not (distinct.text | distinct.boolean)[values].any()
            if name in forced_categorical or pd.api.types.is_bool_dtype(series.dtype) or not looks_numeric:
                n_missing = int(np.count_nonzero(distinct.blank[codes]))
                n_levels = len(np.unique(distinct.level[values]))
                specs.append(ColumnSpec(name, "categorical", n_missing, n_levels))
                continue
        numbers, text_rows = _numbers(series)
        if text_rows is not None and text_rows.any():
            rows = np.flatnonzero(text_rows)
            problems.append(
                f"column {name!r} is listed as numeric but holds text at {_lines(rows + 2)} (e.g. "
                f"{_example(series, rows)}); blank those cells, or list the column as categorical"
            )
            continue
        n_missing = int(np.count_nonzero(np.isnan(numbers)))
        if n_missing == len(series):
            problems.append(f"column {name!r} is blank in all {len(series)} rows; fill it or drop it")
            continue
        infinite = np.isinf(numbers)
        if infinite.any():
            problems.append(
                f"column {name!r} has infinite values at {_lines(np.flatnonzero(infinite) + 2)}; replace them with "
                "finite numbers or blanks"
            )
            continue
        specs.append(ColumnSpec(name, "numeric", n_missing, None))
    _raise_problems(where, problems, "Fix the data or the feature settings and try again.")
    return specs


@dataclass(frozen=True)
class NumericColumn:
    """A fitted numeric column.

    Attributes:
        name: the column's name.
        n_missing: blank cells in the training data.
        median: the value given to blanks (the training median).
        indicator: whether the column has a ``name:missing`` output (it had blanks in the training data).
        center: subtracted before dividing by ``scale`` (standard: mean; robust: median; quantile: unused, 0).
        scale: see ``center`` (quantile: unused, 1).
        quantiles: quantile scaling: non-decreasing training quantiles at evenly spaced levels from 0 to 1.
        scores: quantile scaling: the standard normal score of each quantile's level.
    """

    name: str
    n_missing: int
    median: float
    indicator: bool
    center: float = 0.0
    scale: float = 1.0
    quantiles: tuple[float, ...] = ()
    scores: tuple[float, ...] = ()

    @property
    def output_names(self) -> tuple[str, ...]:
        """``name``, and ``name:missing`` when the column has a missing indicator."""
        return (self.name, f"{self.name}:missing") if self.indicator else (self.name,)

    @cached_property
    def _interpolation(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(self.quantiles, dtype=np.float64)
        s = np.asarray(self.scores, dtype=np.float64)
        return q, s, -q[::-1], -s[::-1]

    def encode(self, values: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Scaled float32 values, blank mask, blank count and clipped count of the raw float64 ``values``."""
        blank = np.isnan(values)
        n_blank = int(np.count_nonzero(blank))
        x = np.where(blank, self.median, values) if n_blank else values
        with np.errstate(over="ignore", invalid="ignore"):
            if scaling == "quantile":
                q, s, reversed_q, reversed_s = self._interpolation
                # the mean of a forward and a backward interpolation puts a tie in the middle of its run of scores
                z = 0.5 * (np.interp(x, q, s) - np.interp(-x, reversed_q, reversed_s))
                clipped = int(np.count_nonzero(np.isinf(x)))
            else:
                z = (x - self.center) / self.scale
                clipped = int(np.count_nonzero(~(np.abs(z) <= OUTPUT_BOUND)))
                if clipped:
                    z = np.clip(z, -OUTPUT_BOUND, OUTPUT_BOUND)
                if scaling == "robust":
                    z = z / np.sqrt(1.0 + (z / SMOOTH_CLIP) ** 2)
        return z.astype(np.float32), blank, n_blank, clipped


@dataclass(frozen=True)
class CategoricalColumn:
    """A fitted categorical column.

    Attributes:
        name: the column's name.
        n_missing: blank cells in the training data.
        n_levels: distinct non-blank levels in the training data.
        encoding: ``"binary"`` (one 0/1 output, 1 for ``levels[1]``, 0 for ``levels[0]``, 0.5 otherwise) or
            ``"one_hot"`` (one output per level of ``levels``, then ``name=<other>``).
        levels: canonical level texts with an output (``"<blank>"`` for blanks), most frequent first for one-hot.
        counts: the training rows of each level of ``levels``.
        other_levels: the other training levels (rare or beyond the cap), most frequent first, at most
            :data:`MAX_STORED_OTHER_LEVELS`; a level in neither list is unseen.
        other_count: training rows encoded as ``<other>``.
    """

    name: str
    n_missing: int
    n_levels: int
    encoding: str
    levels: tuple[str, ...]
    counts: tuple[int, ...]
    other_levels: tuple[str, ...] = ()
    other_count: int = 0

    @property
    def output_names(self) -> tuple[str, ...]:
        """``name=level`` per output; ``name=<other>`` last for one-hot columns."""
        if self.encoding == "binary":
            return (f"{self.name}={self.levels[1]}",)
        return (*(f"{self.name}={level}" for level in self.levels), f"{self.name}={OTHER_LEVEL}")

    @cached_property
    def _known(self) -> pd.Index:
        return pd.Index([*self.levels, *self.other_levels], dtype=object)

    def encode(self, series: pd.Series) -> tuple[np.ndarray, ColumnCounts]:
        """Per row: the binary value (float32), or the one-hot output's index in this column's outputs (intp)."""
        codes, distinct = _factorize(series)
        position = self._known.get_indexer(distinct.level)
        kept = (position >= 0) & (position < len(self.levels))
        unseen = (position < 0) & ~distinct.blank
        rows = np.bincount(codes + 1, minlength=len(distinct.level))
        rows = np.append(rows[1:], rows[0])
        counts = ColumnCounts(
            self.name,
            blanks=int(rows[distinct.blank].sum()),
            other=int(rows[~kept].sum()) if self.encoding == "one_hot" else int(rows[position < 0].sum()),
            unseen=int(rows[unseen].sum()),
        )
        if self.encoding == "binary":
            value = np.where(kept, position, 0.5).astype(np.float32)
            return value[codes], counts
        index = np.where(kept, position, len(self.levels)).astype(np.intp)
        return index[codes], counts


Column = NumericColumn | CategoricalColumn


@dataclass(frozen=True)
class ColumnCounts:
    """What :meth:`Preprocessor.transform` met in one column.

    Attributes:
        name: the column's name.
        blanks: blank cells (imputed, or the level ``<blank>``).
        other: categorical cells encoded as ``<other>`` (rare in training, beyond the cap, or unseen); for binary
            columns, the cells encoded as 0.5 (unseen, or blank).
        unseen: categorical cells with a non-blank level not seen in the training data (part of ``other``).
        clipped: numeric cells that were infinite or scaled beyond :data:`OUTPUT_BOUND`.
    """

    name: str
    blanks: int = 0
    other: int = 0
    unseen: int = 0
    clipped: int = 0


@dataclass(frozen=True)
class TransformCounts:
    """Per-column counts of one :meth:`Preprocessor.transform` call; add the counts of chunks with ``+``."""

    rows: int
    columns: tuple[ColumnCounts, ...]

    def __add__(self, other: TransformCounts) -> TransformCounts:
        if [c.name for c in self.columns] != [c.name for c in other.columns]:
            raise ValueError("counts of different preprocessors cannot be added")
        return TransformCounts(
            self.rows + other.rows,
            tuple(
                ColumnCounts(a.name, a.blanks + b.blanks, a.other + b.other, a.unseen + b.unseen, a.clipped + b.clipped)
                for a, b in zip(self.columns, other.columns, strict=True)
            ),
        )

    def column(self, name: str) -> ColumnCounts:
        """The counts of the column ``name``."""
        for counts in self.columns:
            if counts.name == name:
                return counts
        raise KeyError(name)


def _fill(out: np.ndarray, dense: list[tuple[int, np.ndarray]], hot: list[tuple[int, np.ndarray]]) -> None:
    """Fill the uninitialised ``out``: zeros, per-row vectors into their columns, ones at per-row one-hot positions.

    A block of rows at a time, so that the block stays in cache while its columns are written: writing whole columns
    of a wide row-major array (a page per few rows) is several times slower, most of all on fresh memory.
    """
    n = out.shape[0]
    arange = np.arange(min(n, _BLOCK_ROWS))
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        block = out[start:stop]
        block.fill(0.0)
        for j, values in dense:
            block[:, j] = values[start:stop]
        rows = arange[: stop - start]
        for offset, index in hot:
            block[rows, offset + index[start:stop]] = 1.0


@dataclass(frozen=True)
class Preprocessor:
    """Fitted preprocessing of the feature columns; build it with :func:`fit_preprocessor` or :meth:`from_json`.

    Attributes:
        columns: the fitted columns, in feature order; each one's outputs are adjacent, in this order.
        scaling: one of :data:`SCALINGS`, for every numeric column.
    """

    columns: tuple[Column, ...]
    scaling: str

    @property
    def features(self) -> tuple[str, ...]:
        """The feature column names, in order."""
        return tuple(c.name for c in self.columns)

    @cached_property
    def output_names(self) -> tuple[str, ...]:
        """One name per output column: ``age``, ``age:missing``, ``sex=male``, ``city=Paris``, ``city=<other>``."""
        return tuple(name for c in self.columns for name in c.output_names)

    @property
    def n_outputs(self) -> int:
        """The number of output columns."""
        return len(self.output_names)

    @property
    def scaled_numeric_outputs(self) -> tuple[int, ...]:
        """The indices (into the output columns) of the scaled numeric values, one per numeric column, in feature
        order; their ``name:missing`` indicators and the categorical outputs are not among them. These are the inputs
        a model may embed (``hpo.model.MLP``'s ``embedded_inputs``)."""
        return tuple(
            offset
            for offset, column in zip(self._offsets, self.columns, strict=True)
            if isinstance(column, NumericColumn)
        )

    @cached_property
    def _offsets(self) -> tuple[int, ...]:
        offsets, start = [], 0
        for column in self.columns:
            offsets.append(start)
            start += len(column.output_names)
        return tuple(offsets)

    def transform(
        self, frame: pd.DataFrame, *, where: str = "input", first_line: int = 2
    ) -> tuple[np.ndarray, TransformCounts]:
        """Apply the preprocessing to raw rows.

        Args:
            frame: the rows, with (at least) the feature columns by name; other columns are ignored.
            where: the start of error messages (a file name, or ``predict_proba``).
            first_line: the file line of the frame's first row, for messages (2 for a whole CSV file; for a chunk of
                a file, 2 plus the rows before it).

        Returns:
            A finite float32 array of shape ``(len(frame), n_outputs)``, and what was met in each column.

        Raises:
            DataError: listing every problem at once: missing or repeated feature columns, text in numeric columns
                (with up to five line numbers each).
        """
        problems, absent = _column_problems(frame, self.features)
        dense: list[tuple[int, np.ndarray]] = []
        hot: list[tuple[int, np.ndarray]] = []
        counts: list[ColumnCounts] = []
        for offset, column in zip(self._offsets, self.columns, strict=True):
            if column.name in absent:
                continue
            series = frame[column.name]
            if isinstance(column, NumericColumn):
                values, text_rows = _numbers(series)
                if text_rows is not None and text_rows.any():
                    rows = np.flatnonzero(text_rows)
                    problems.append(
                        f"numeric column {column.name!r} holds text at {_lines(rows + first_line)} (e.g. "
                        f"{_example(series, rows)})"
                    )
                    continue
                scaled, blank, n_blank, clipped = column.encode(values, self.scaling)
                dense.append((offset, scaled))
                if column.indicator:
                    dense.append((offset + 1, blank))
                counts.append(ColumnCounts(column.name, blanks=n_blank, clipped=clipped))
            else:
                encoded, column_counts = column.encode(series)
                if column.encoding == "binary":
                    dense.append((offset, encoded))
                else:
                    hot.append((offset, encoded))
                counts.append(column_counts)
        _raise_problems(
            where,
            problems,
            "The input needs every feature column under its training name, and numeric columns accept numbers and "
            "blanks only.",
        )
        out = np.empty((len(frame), self.n_outputs), dtype=np.float32)
        _fill(out, dense, hot)
        return out, TransformCounts(len(frame), tuple(counts))

    def describe(self) -> list[dict[str, Any]]:
        """A summary of each column in plain JSON types, for printing and for model.json.

        Returns:
            Per column: name, kind, encoding (the scaling, ``binary`` or ``one_hot``), missing (training blanks),
            levels (distinct non-blank training levels; None for numeric), outputs (their names), and the median
            (numeric) or kept_levels and other_rows (categorical).
        """
        rows: list[dict[str, Any]] = []
        for column in self.columns:
            row: dict[str, Any] = {"name": column.name}
            if isinstance(column, NumericColumn):
                row |= {"kind": "numeric", "encoding": self.scaling, "missing": column.n_missing, "levels": None}
                row["median"] = column.median
            else:
                row |= {"kind": "categorical", "encoding": column.encoding, "missing": column.n_missing}
                row |= {"levels": column.n_levels, "kept_levels": len(column.levels)}
                row["other_rows"] = column.other_count
            row["outputs"] = list(column.output_names)
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        """Everything fitted, in plain JSON types (finite floats, so ``json.dumps(allow_nan=False)`` works)."""
        columns: list[dict[str, Any]] = []
        for column in self.columns:
            if isinstance(column, NumericColumn):
                doc: dict[str, Any] = {
                    "name": column.name,
                    "kind": "numeric",
                    "n_missing": column.n_missing,
                    "median": column.median,
                    "indicator": column.indicator,
                }
                if self.scaling == "quantile":
                    doc |= {"quantiles": list(column.quantiles), "scores": list(column.scores)}
                else:
                    doc |= {"center": column.center, "scale": column.scale}
            else:
                doc = {
                    "name": column.name,
                    "kind": "categorical",
                    "n_missing": column.n_missing,
                    "n_levels": column.n_levels,
                    "encoding": column.encoding,
                    "levels": list(column.levels),
                    "counts": list(column.counts),
                    "other_levels": list(column.other_levels),
                    "other_count": column.other_count,
                }
            columns.append(doc)
        return {"format": _FORMAT, "version": _VERSION, "scaling": self.scaling, "columns": columns}

    @classmethod
    def from_json(cls, doc: object, where: str) -> Preprocessor:
        """Rebuild a preprocessor from :meth:`to_json`'s document; it transforms bit for bit as the original.

        Args:
            doc: the parsed JSON document.
            where: the start of error messages (the file it was read from).

        Raises:
            WeightsError: the document is not a valid preprocessing description (with the key path of the problem).
        """
        reader = _JsonReader(where)
        doc = reader.mapping(doc, "preprocessing")
        if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
            reader.fail(
                "preprocessing",
                f"is not an {_FORMAT} document of version {_VERSION} (format={doc.get('format')!r}, "
                f"version={doc.get('version')!r})",
            )
        scaling = doc.get("scaling")
        if scaling not in SCALINGS:
            reader.fail("preprocessing.scaling", f"must be one of {', '.join(SCALINGS)}, but got {scaling!r}")
        raw_columns = doc.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            reader.fail("preprocessing.columns", "must be a non-empty list")
        columns: list[Column] = []
        for i, item in enumerate(raw_columns):
            columns.append(reader.column(item, f"preprocessing.columns[{i}]", str(scaling)))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            reader.fail("preprocessing.columns", "names a column more than once")
        return cls(tuple(columns), str(scaling))


class _JsonReader:
    """Checks the parts of a preprocessing document, raising WeightsError with the key path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, what: str) -> NoReturn:
        raise WeightsError(
            f"{self.where}: {path} {what}; the file was not written by this version of hpo or was edited. "
            "Train the model again to rewrite it"
        )

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a JSON object, but got {type(value).__name__}")
        return value

    def integer(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(path, f"must be a whole number >= 0, but got {value!r}")
        return int(value)

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"must be a finite number, but got {value!r}")
        return float(value)

    def numbers(self, value: object, path: str) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) < 2:
            self.fail(path, "must be a list of at least two numbers")
        numbers = tuple(self.number(v, f"{path}[{i}]") for i, v in enumerate(value))
        if any(b < a for a, b in itertools.pairwise(numbers)):
            self.fail(path, "must not decrease")
        return numbers

    def texts(self, value: object, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(path, f"must be a list of texts, but got {str(value)[:60]}")
        return tuple(value)

    def column(self, item: object, path: str, scaling: str) -> Column:
        doc = self.mapping(item, path)
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            self.fail(f"{path}.name", f"must be a column name, but got {name!r}")
        name = str(name)
        path = f"{path} ({name!r})"
        n_missing = self.integer(doc.get("n_missing"), f"{path}.n_missing")
        kind = doc.get("kind")
        if kind == "numeric":
            indicator = doc.get("indicator")
            if not isinstance(indicator, bool):
                self.fail(f"{path}.indicator", f"must be true or false, but got {indicator!r}")
            median = self.number(doc.get("median"), f"{path}.median")
            if scaling == "quantile":
                quantiles = self.numbers(doc.get("quantiles"), f"{path}.quantiles")
                scores = self.numbers(doc.get("scores"), f"{path}.scores")
                if len(quantiles) != len(scores):
                    self.fail(f"{path}.scores", f"must hold one score per quantile ({len(quantiles)})")
                return NumericColumn(name, n_missing, median, bool(indicator), quantiles=quantiles, scores=scores)
            scale = self.number(doc.get("scale"), f"{path}.scale")
            if scale <= 0:
                self.fail(f"{path}.scale", f"must be positive, but got {scale!r}")
            center = self.number(doc.get("center"), f"{path}.center")
            return NumericColumn(name, n_missing, median, bool(indicator), center=center, scale=scale)
        if kind != "categorical":
            self.fail(f"{path}.kind", f"must be 'numeric' or 'categorical', but got {kind!r}")
        encoding = doc.get("encoding")
        if encoding not in ("binary", "one_hot"):
            self.fail(f"{path}.encoding", f"must be 'binary' or 'one_hot', but got {encoding!r}")
        levels = self.texts(doc.get("levels"), f"{path}.levels")
        other_levels = self.texts(doc.get("other_levels"), f"{path}.other_levels")
        if encoding == "binary" and (len(levels) != 2 or other_levels):
            self.fail(f"{path}.levels", "of a binary column must be two levels, and other_levels empty")
        if len({*levels, *other_levels}) != len(levels) + len(other_levels):
            self.fail(f"{path}.levels", "name a level more than once")
        counts = doc.get("counts")
        if not isinstance(counts, list) or len(counts) != len(levels):
            self.fail(f"{path}.counts", f"must be a list of one count per level ({len(levels)})")
        return CategoricalColumn(
            name=name,
            n_missing=n_missing,
            n_levels=self.integer(doc.get("n_levels"), f"{path}.n_levels"),
            encoding=str(encoding),
            levels=levels,
            counts=tuple(self.integer(c, f"{path}.counts[{i}]") for i, c in enumerate(counts)),
            other_levels=other_levels,
            other_count=self.integer(doc.get("other_count"), f"{path}.other_count"),
        )


def _finite(value: float) -> float:
    return float(np.clip(value, -np.finfo(np.float64).max, np.finfo(np.float64).max))


def _fit_numeric(name: str, values: np.ndarray, n_missing: int, scaling: str) -> NumericColumn:
    """Fit one numeric column on its finite, non-blank training ``values``."""
    big = float(np.max(np.abs(values)))
    # order statistics cannot overflow but sums and differences of values near 1e308 can: work on values / big
    down = big if big > _HUGE else 1.0
    x = values / down if down != 1.0 else values
    median = _finite(float(np.median(x)) * down)
    constant = bool(x.min() == x.max())
    column = NumericColumn(name, n_missing, median, indicator=n_missing > 0)
    if scaling == "quantile":
        m = max(2, min(MAX_QUANTILES, len(x)))
        levels = np.linspace(0.0, 1.0, m)
        quantiles = np.maximum.accumulate(np.quantile(x, levels) * down)  # rounding must not make them decrease
        eps = 0.5 / len(x)
        normal = NormalDist()
        scores = np.array([normal.inv_cdf(min(max(p, eps), 1.0 - eps)) for p in levels])
        scores = 0.5 * (scores - scores[::-1])  # exactly antisymmetric: a constant column maps to 0
        return replace(column, quantiles=tuple(map(float, quantiles)), scores=tuple(map(float, scores)))
    std = float(np.std(x)) * down
    if scaling == "standard":
        center, scale = float(np.mean(x)) * down, std
    else:
        q25, q75 = np.quantile(x, [0.25, 0.75])
        center, scale = median, float(q75 - q25) * down
        if not scale > 0:
            scale = std
    if constant or not scale > 0:
        center, scale = (median if constant else center), 1.0
    return replace(column, center=_finite(center), scale=_finite(scale))


def _fit_categorical(name: str, series: pd.Series, min_level_count: int, max_one_hot: int) -> CategoricalColumn | None:
    """Fit one categorical column; None when it has no rows."""
    codes, distinct = _factorize(series)
    level_of_distinct, levels = pd.factorize(distinct.level)
    counts = np.bincount(level_of_distinct[codes], minlength=len(levels)) if len(codes) else np.zeros(len(levels), int)
    present = counts > 0
    levels, counts = np.asarray(levels, dtype=object)[present], counts[present]
    if not len(levels):
        return None
    order = pd.DataFrame({"count": -counts, "level": levels}).sort_values(["count", "level"]).index.to_numpy()
    levels, counts = levels[order], counts[order]
    is_blank = levels == BLANK_LEVEL
    n_missing = int(counts[is_blank].sum())
    n_levels = int(np.count_nonzero(~is_blank))
    if n_missing == 0 and n_levels == 2:
        ranked = np.argsort(levels.astype(str))
        return CategoricalColumn(
            name,
            0,
            2,
            "binary",
            tuple(str(v) for v in levels[ranked]),
            tuple(int(c) for c in counts[ranked]),
        )
    frequent = np.flatnonzero(counts >= min_level_count)[:max_one_hot]
    rest = np.ones(len(levels), dtype=bool)
    rest[frequent] = False
    return CategoricalColumn(
        name,
        n_missing,
        n_levels,
        "one_hot",
        tuple(str(v) for v in levels[frequent]),
        tuple(int(c) for c in counts[frequent]),
        tuple(str(v) for v in levels[rest][:MAX_STORED_OTHER_LEVELS]),
        int(counts[rest].sum()),
    )


def fit_preprocessor(
    train: pd.DataFrame,
    columns: Sequence[ColumnSpec],
    *,
    scaling: str = "standard",
    min_level_count: int = DEFAULT_MIN_LEVEL_COUNT,
    max_one_hot: int = DEFAULT_MAX_ONE_HOT,
    where: str = "training data",
) -> Preprocessor:
    """Fit the preprocessing of ``columns`` on the training rows (see the module docstring for the rules).

    Args:
        train: the training rows. With an integer index (as read from a CSV file, then split), messages give
            file lines as index + 2.
        columns: the feature columns, from :func:`infer_columns`.
        scaling: one of :data:`SCALINGS`.
        min_level_count: categorical levels seen in fewer training rows share the ``<other>`` output.
        max_one_hot: at most this many levels of a categorical column get their own output (the most frequent).
        where: the start of error messages.

    Returns:
        The fitted preprocessor.

    Raises:
        ConfigError: a bad ``scaling``, ``min_level_count``, ``max_one_hot`` or column kind.
        DataError: listing every problem at once: absent columns, text or infinite values in numeric columns,
            columns without a value in the training rows.
    """
    if scaling not in SCALINGS:
        raise ConfigError(f"scaling must be one of {', '.join(SCALINGS)}, but got scaling={scaling!r}")
    for label, value in (("min_level_count", min_level_count), ("max_one_hot", max_one_hot)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a whole number >= 1, but got {label}={value!r}")
    bad_kinds = [c.name for c in columns if c.kind not in ("numeric", "categorical")]
    if bad_kinds:
        raise ConfigError(f"column kinds must be 'numeric' or 'categorical'; {_names(bad_kinds)} have another")
    problems, absent = _column_problems(train, [c.name for c in columns])
    index = train.index.to_numpy()
    lines = index + 2 if train.index.dtype.kind in "iu" else np.arange(len(train)) + 2
    fitted: list[Column] = []
    for spec in columns:
        if spec.name in absent:
            continue
        series = train[spec.name]
        if spec.kind == "categorical":
            categorical = _fit_categorical(spec.name, series, min_level_count, max_one_hot)
            if categorical is None or categorical.n_levels == 0:
                problems.append(f"column {spec.name!r} has no values in the {len(train)} training rows")
            else:
                fitted.append(categorical)
            continue
        values, text_rows = _numbers(series)
        if text_rows is not None and text_rows.any():
            rows = np.flatnonzero(text_rows)
            problems.append(
                f"numeric column {spec.name!r} holds text at {_lines(lines[rows])} (e.g. {_example(series, rows)})"
            )
            continue
        blank = np.isnan(values)
        infinite = np.isinf(values)
        if infinite.any():
            problems.append(f"column {spec.name!r} has infinite values at {_lines(lines[np.flatnonzero(infinite)])}")
        elif blank.all():
            problems.append(f"column {spec.name!r} has no values in the {len(train)} training rows")
        else:
            fitted.append(_fit_numeric(spec.name, values[~blank], int(np.count_nonzero(blank)), scaling))
    _raise_problems(where, problems, "Fix the data or the feature settings and try again.")
    return Preprocessor(tuple(fitted), scaling)
