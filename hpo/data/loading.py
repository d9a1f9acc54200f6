"""Data: read a CSV (or the embedded data set), check it, split it, and preprocess it for the network."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "DEFAULT_SCALING",
    "MAX_DATA_BYTES_ENV",
    "Prepared",
    "PreparedData",
    "ReadLimitError",
    "file_kind",
    "file_sha256",
    "load_data",
    "open_regular_file",
    "other_separator",
    "parser_error_text",
    "read_csv_header",
    "split_rows",
]

Label = str | int | bool
#: More feature columns than this is almost always a mistake (a transposed file, an index saved as columns).
MAX_FEATURES = 10_000
#: The numeric scaling when the search space does not set ``preprocessing.numeric``.
DEFAULT_SCALING = "standard"
#: Environment variable that caps the bytes of a data CSV, which is read whole into memory (``data.path``, and the
#: training file that ``hpo evaluate`` scores again); ``hpo predict`` streams its input and is not capped.
MAX_DATA_BYTES_ENV = "HPO_MAX_DATA_BYTES"
#: The cap when ``$HPO_MAX_DATA_BYTES`` is not set: far beyond a tabular data set that trains in memory, yet a
#: sparse file or one that never stops growing is refused before it exhausts the machine.
DEFAULT_MAX_DATA_BYTES = 8 << 30
#: The most bytes read to find a CSV's header line (10,000 columns of long names fit many times over).
_MAX_HEADER_BYTES = 16 << 20


#: Below this many rows of a class in a validation split (or fold), its AUROC is too noisy to select on alone.
SMALL_CLASS = 30
#: Data sets with at least this many labelled rows get a test split by default.
TEST_SPLIT_MIN_ROWS = 500
DEFAULT_TEST_FRACTION = 0.2

#: Which rows train and validate: None, the one split (fold 0 with CV); k, CV fold k; "all", train + validation
#: rows together (a refit).
Fold = int | str | None


@dataclass(frozen=True)
class Prepared:
    """The network's inputs for one numeric scaling and split: the preprocessor fitted on the split's training rows,
    and the float32 inputs and labels of its training, validation and test rows."""

    preprocessor: Preprocessor
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class PreparedData:
    """The checked data, split, with its preprocessing fitted on a training split (once per scaling and split, on
    demand).

    ``train_rows``, ``val_rows``, ``test_rows`` and ``dropped_rows`` are 0-based data rows of the file (line = row +
    2). The test rows are held out from the whole search. With cross-validation, ``folds`` holds the validation rows
    of each fold (of the train + validation rows), and ``train_rows``/``val_rows`` are fold 0's split.
    """

    features: pd.DataFrame  # the raw feature columns of the kept rows, indexed by data row
    y: pd.Series  # the encoded label (0/1, float32) of every kept row, indexed by data row
    columns: tuple[ColumnSpec, ...]
    labels: tuple[Label, Label]  # (negative, positive) in the file's own values
    train_rows: tuple[int, ...]
    val_rows: tuple[int, ...]
    source: str
    test_rows: tuple[int, ...] = ()
    folds: tuple[tuple[int, ...], ...] = ()
    dropped_rows: tuple[int, ...] = ()  # rows left out because their target is blank
    path: str = ""  # the CSV file it was read from
    notes: tuple[str, ...] = ()  # what a user may want to know about how the columns were read
    _variants: dict[tuple[str, Fold], Prepared] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def _labels(self, rows: Sequence[int]) -> np.ndarray:
        return np.array(self.y.loc[list(rows)].to_numpy(), dtype=np.float32)  # a writable copy for torch

    @property
    def y_train(self) -> np.ndarray:
        return self._labels(self.train_rows)

    @property
    def y_val(self) -> np.ndarray:
        return self._labels(self.val_rows)

    @property
    def y_test(self) -> np.ndarray:
        return self._labels(self.test_rows)

    def split(self, fold: Fold = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(training rows, validation rows) of ``fold`` (see :data:`Fold`)."""
        if fold is None:
            return self.train_rows, self.val_rows
        pool = tuple(sorted((*self.train_rows, *self.val_rows)))
        if fold == "all":
            return pool, ()
        if not isinstance(fold, int) or not 0 <= fold < len(self.folds):
            raise ValueError(f"fold must be None, 'all' or 0..{len(self.folds) - 1}, but got fold={fold!r}")
        held = set(self.folds[fold])
        return tuple(r for r in pool if r not in held), self.folds[fold]

    def prepared(self, scaling: str = DEFAULT_SCALING, fold: Fold = None) -> Prepared:
        """The inputs under ``scaling`` for ``fold``'s split, fitted on its training rows the first time it is asked
        for, then reused."""
        key = (scaling, fold)
        if key not in self._variants:
            train_rows, val_rows = self.split(fold)
            train = self.features.loc[list(train_rows)]
            preprocessor = fit_preprocessor(train, self.columns, scaling=scaling, where=self.source)

            def inputs(rows: Sequence[int]) -> np.ndarray:
                return preprocessor.transform(self.features.loc[list(rows)], where=self.source)[0]

            self._variants[key] = Prepared(
                preprocessor=preprocessor,
                x_train=inputs(train_rows),
                y_train=self._labels(train_rows),
                x_val=inputs(val_rows),
                y_val=self._labels(val_rows),
                x_test=inputs(self.test_rows),
                y_test=self._labels(self.test_rows),
            )
        return self._variants[key]

    def _any_prepared(self) -> Prepared:
        """A variant already fitted (the columns and input widths are the same under every scaling and split), or
        the default one: asking for the shape never fits a scaling no trial uses."""
        return next(iter(self._variants.values()), None) or self.prepared()

    @property
    def n_features(self) -> int:
        """Inputs of the network (the same under every scaling)."""
        return self._any_prepared().preprocessor.n_outputs

    @property
    def x_train(self) -> np.ndarray:
        return self.prepared().x_train

    @property
    def x_val(self) -> np.ndarray:
        return self.prepared().x_val

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Rows per class (``negative``, ``positive``) of each split: ``train``, ``validation``, ``test`` and, with
        cross-validation, ``fold_0``... (the validation rows of each fold)."""
        splits = {"train": self.train_rows, "validation": self.val_rows, "test": self.test_rows}
        splits |= {f"fold_{k}": rows for k, rows in enumerate(self.folds)}
        counts = {}
        for name, rows in splits.items():
            y = self._labels(rows)
            counts[name] = {"negative": int((y == 0).sum()), "positive": int((y == 1).sum())}
        return counts

    def small_data_warning(self) -> str | None:
        """A warning when a validation split (or fold) holds fewer than :data:`SMALL_CLASS` rows of a class: its
        AUROC is then too coarse and noisy to select models on; None when every split is large enough."""
        counts = self.class_counts()
        checked = [k for k in counts if k.startswith("fold_")] or ["validation"]
        smallest = min(checked, key=lambda k: min(counts[k].values()))
        n_neg, n_pos = counts[smallest]["negative"], counts[smallest]["positive"]
        if min(n_neg, n_pos) >= SMALL_CLASS:
            return None
        width = 2 * 1.96 * _auroc_standard_error(0.85, n_pos, n_neg)
        # AUROC lies in [0, 1]: an interval wider than that (a handful of rows) is no longer a number to quote.
        spread = (
            f"a 95% interval about {width:.2f} wide"
            if width < 1
            else "a 95% interval wider than AUROC's whole range (0 to 1): it says next to nothing"
        )
        where = f"each of the {len(self.folds)} CV folds" if self.folds else "the validation split"
        advice = (
            "more data is the only cure; consider fewer folds only if a fold lacks a class"
            if self.folds
            else "set data.cv_folds (e.g. 5) so that every row validates once and the trial's value is the mean over "
            "folds, and keep data.test_fraction for an honest final number"
        )
        return (
            f"small data: {where} holds as few as {n_pos} positive and {n_neg} negative rows (fewer than "
            f"{SMALL_CLASS} of a class); an AUROC of 0.85 measured on it has {spread}, so the "
            f"best trial's value is mostly luck; {advice}"
        )

    def describe_columns(self) -> list[dict[str, Any]]:
        """Per feature column: name, kind, blanks in the data, levels (categorical), and the network inputs it gives."""
        described = {d["name"]: d for d in self._any_prepared().preprocessor.describe()}
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


def _auroc_standard_error(auroc: float, n_pos: int, n_neg: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC measured on ``n_pos`` positive and ``n_neg`` negative
    rows."""
    n_pos, n_neg = max(n_pos, 1), max(n_neg, 1)
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    variance = (auroc * (1 - auroc) + (n_pos - 1) * (q1 - auroc**2) + (n_neg - 1) * (q2 - auroc**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(variance, 0.0)))


def _line(row: int) -> int:
    """The 1-based line of the file holding data row ``row`` (0-based, after the header)."""
    return row + 2


def rows_text(rows: Sequence[int] | np.ndarray) -> str:
    """``line 7`` or ``lines 7, 9, 12, 20, 31 and 4 more`` for 0-based data rows."""
    shown = ", ".join(str(_line(int(r))) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"line{'s' if len(rows) > 1 else ''} {shown}{more}"


def file_kind(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is, in words (``"a named pipe (FIFO)"``); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class ReadLimitError(Exception):
    """More bytes were read from a file than its reader's limit allows (a line or a file too long to be data)."""


class _CappedReader(io.RawIOBase):
    """The bytes of an open file descriptor, raising :class:`ReadLimitError` once more than ``limit`` were read, and
    ``failed`` (an error saying which file) when the system cannot read it."""

    def __init__(self, fd: int, limit: int | None, failed: Callable[[OSError], Exception]) -> None:
        super().__init__()
        self._fd, self._limit, self._read, self._failed = fd, limit, 0, failed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = os.readv(self._fd, [buffer])
        except OSError as exc:
            raise self._failed(exc) from None
        self._read += n
        if self._limit is not None and self._read > self._limit:
            raise ReadLimitError(f"read more than {self._limit} bytes")
        return n

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


@contextmanager
def open_regular_file(
    path: Path,
    *,
    limit: int | None = None,
    refuse: type[Exception] = DataError,
    fix: str = "",
    name: Path | None = None,
) -> Iterator[IO[bytes]]:
    """A binary reader of the regular file ``path``; reading more than ``limit`` bytes from it (None: no limit) raises
    :class:`ReadLimitError`, so a file that keeps growing cannot exhaust memory.

    A folder, named pipe, device or socket (also behind a symlink) is refused before it is opened, since reading one
    may block forever or never end; the file is then opened without blocking and checked again, so nothing can be
    swapped in between. Messages name the file ``name`` (default ``path``), for a path opened through a handle.

    Raises:
        FileNotFoundError: there is no such file (callers say what that means).
        DataError: (or ``refuse``) it is not a regular file (the message ends with ``fix``), or cannot be opened;
            the reader raises it too when a read fails (an I/O error).
    """
    try:
        kind = file_kind(os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC) if kind is None else -1
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise refuse(f"{name or path}: cannot be read ({exc.strerror or exc})") from None

    def failed(exc: OSError) -> Exception:
        return refuse(f"{name or path}: cannot be read ({exc.strerror or exc})")

    try:
        kind = kind or file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            advice = fix or "hpo reads only regular files, since a pipe or a device may block or never end"
            link = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
            raise refuse(f"{name or path}: is {kind}{link}, not a regular file; {advice}")
        reader = io.BufferedReader(_CappedReader(fd, limit, failed))
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    with reader:
        yield reader


def read_csv_header(path: Path, *, missing: str, folder: str, empty: str) -> list[str]:
    """The header row of the CSV file ``path``.

    Raises:
        DataError: no such file, not a regular file (a folder, a named pipe, a device), not UTF-8, an unreadable or
            empty header; ``missing``, ``folder`` and ``empty`` are the messages' second halves, saying how to fix it
            where the file came from.
    """
    if path.is_dir():
        raise DataError(f"{path}: is a folder; {folder}")
    try:
        with open_regular_file(path, limit=_MAX_HEADER_BYTES, fix=folder) as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            try:
                header = next(csv.reader(text), None)
            finally:
                text.detach()
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: the header line cannot be read as CSV ({exc})") from None
    except ReadLimitError:
        raise DataError(
            f"{path}: its first line is longer than {_MAX_HEADER_BYTES} bytes, so it is not the header of a CSV file; "
            f"{folder}"
        ) from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{path}: is empty; {empty}")
    return header


#: Column separators that are not a comma, which a header holding one of them most likely uses.
_OTHER_SEPARATORS = (";", "\t", "|")


def other_separator(header: Sequence[str]) -> str | None:
    """The first common column separator other than the comma (``;``, tab, ``|``) that a cell of ``header`` holds:
    the file was likely saved with it; None when there is none."""
    return next((s for s in _OTHER_SEPARATORS if any(s in name for name in header)), None)


_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def parser_error_text(exc: Exception) -> str:
    """What a ``pd.read_csv`` parser error says, as one clean clause: ``line 1311 has 7 fields, the header 6``.

    pandas' own text (``Error tokenizing data. C error: Expected 6 fields in line 1311, saw 7\\n``) names the file's
    line, counting the header as line 1 (a quoted value spanning lines counts once).
    """
    text = " ".join(str(exc).split())
    fields = _FIELD_COUNT.search(text)
    if fields:
        expected, line, seen = fields.groups()
        return f"line {line} has {seen} fields, the header {expected}"
    quote = _OPEN_QUOTE.search(text)
    if quote:
        return f'a quoted value opened on line {int(quote.group(1)) + 1} is never closed (a lone " in a value)'
    return text.removeprefix("Error tokenizing data. ").removeprefix("C error: ") or type(exc).__name__


def file_sha256(path: Path | str) -> str:
    """The sha256 of a data file's bytes (hex), read once per process for a file whose size and modification time
    are unchanged (a study's model cards and fingerprint each name it).

    Raises:
        OSError: the file cannot be read.
    """
    info = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _max_data_bytes() -> int:
    """``$HPO_MAX_DATA_BYTES`` when set, else :data:`DEFAULT_MAX_DATA_BYTES`.

    Raises:
        DataError: the variable is not a whole number of bytes.
    """
    raw = os.environ.get(MAX_DATA_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_DATA_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise DataError(f"${MAX_DATA_BYTES_ENV}: must be a whole number of bytes >= 1, got {raw!r}")
    return int(raw)


def read_table(path: Path, target: str | None = None) -> pd.DataFrame:
    """Read a CSV file with a header row, refusing what pandas would silently repair; blanks (``NA``, ``NaN``, empty
    and whitespace-only cells) are NaN.

    The file is read whole, up to ``$HPO_MAX_DATA_BYTES`` (default 8 GiB). A file whose header has a single column
    is not a data file (a target and a feature need two), unless that column is ``target``: it may be anything
    (``/etc/shadow``, a key), so no text of it appears in the message.

    Raises:
        DataError: naming the file and the problem.
    """
    fix = "data.path must be a CSV file"
    header = read_csv_header(
        path,
        missing="no such data file; check data.path (relative paths start in the current folder)",
        folder=fix,
        empty="a CSV with a header row and at least one data row is needed",
    )
    if len(header) < 2 and header[0] != target:
        separator = other_separator(header)
        hint = f" (it holds {separator!r}: save the file with commas between the columns)" if separator else ""
        raise DataError(
            f"{path}: its first line is not a CSV header of at least two comma-separated columns (a target and a "
            f"feature){hint}, so it is not read as data and none of its content is shown; check data.path"
        )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears more than once in the header; rename one of them")
        seen.add(name)
    limit = _max_data_bytes()
    too_large = (
        f"more than the {limit} bytes hpo reads from a data file (${MAX_DATA_BYTES_ENV} sets the limit); check "
        "data.path, or raise the limit if the machine has the memory for it"
    )
    try:
        with open_regular_file(path, limit=limit, fix=fix) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise DataError(f"{path}: is {size} bytes, {too_large}")
            frame = pd.read_csv(handle, encoding="utf-8-sig", on_bad_lines="error", **read_csv_kwargs())
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file any more (it was removed while hpo read it)") from None
    except ReadLimitError:
        raise DataError(f"{path}: grew while it was read, to {too_large}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: is empty; a CSV with a header row and at least one data row is needed") from None
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{path}: rows do not match the header: {parser_error_text(exc)}; every row needs {len(header)} fields "
            "(quote a value that holds a comma)"
        ) from None
    if len(frame) == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return normalize_blanks(frame)


#: The spellings YAML 1.1 (PyYAML) reads as True or False (compared in lower case).
_YAML_TRUE = frozenset({"y", "yes", "true", "on"})
_YAML_FALSE = frozenset({"n", "no", "false", "off"})


def _clean_target(column: pd.Series) -> pd.Series:
    """The target column with text values stripped of surrounding whitespace, as feature levels are (so `` yes`` and
    ``yes`` are one class, and a label matches ``data.positive_label``); text that is then all true/false (any case)
    becomes booleans, as pandas reads those cells when they carry no spaces."""
    if column.dtype.kind in "biuf":
        return column
    stripped = column.map(lambda v: v.strip() if isinstance(v, str) else v)
    if stripped.map(lambda v: isinstance(v, str) and v.lower() in ("true", "false")).all():
        return stripped.map(lambda v: v.lower() == "true").astype(bool)
    return stripped


def _encode_labels(
    column: pd.Series, target: str, positive: Label | None, path: Path
) -> tuple[np.ndarray, tuple[Label, Label]]:
    column = _clean_target(column)
    values = column.to_numpy()
    distinct = pd.unique(column)
    if len(distinct) != 2:
        frequent = column.value_counts()
        counts = frequent.head(6).to_dict()
        where = ""
        if len(distinct) > 2:  # the rows of the rarer values: often a stray label or two
            odd = column.index.to_numpy()[~column.isin(list(frequent.index[:2])).to_numpy()]
            where = f"; the values other than {list(frequent.index[:2])} are on {rows_text(odd)}"
        raise DataError(
            f"{path}: target column {target!r} must have exactly two classes for a binary classifier, "
            f"found {len(distinct)} ({counts}){where}; recode it to two values"
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
    if not matches and isinstance(positive, bool):
        # YAML 1.1 reads an unquoted `positive_label: no` as False: take the one value spelled as that boolean.
        spellings = _YAML_TRUE if positive else _YAML_FALSE
        matches = [v for v in items if isinstance(v, str) and v.lower() in spellings]
        if len(matches) != 1:
            raise DataError(
                f"{path}: data.positive_label {positive!r} is not a value of column {target!r} ({items}); YAML reads "
                "an unquoted yes/no, on/off, true/false or y/n as a boolean, so write the label in quotes, e.g. "
                'positive_label: "no"'
            )
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


def fold_rows(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """A stratified split of row indices into ``k`` folds (each class dealt round-robin after a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    folds: list[list[np.ndarray]] = [[] for _ in range(k)]
    for cls in (0.0, 1.0):
        rows = np.flatnonzero(y == cls)
        rows = rows[rng.permutation(len(rows))]
        for f in range(k):
            folds[f].append(rows[f::k])
    return [np.sort(np.concatenate(parts)) for parts in folds]


#: A categorical column at least this share of whose filled cells are numbers gets a note (see _stray_text_notes).
NUMERIC_SHARE = 0.9


def _stray_text_notes(frame: pd.DataFrame, columns: Sequence[ColumnSpec], forced: Sequence[str]) -> tuple[str, ...]:
    """A note for each column read as categorical only because a few of its cells hold text (``unknown``, ``?``):
    mostly numbers, it is likely numeric with a placeholder for missing values, which as categorical gets one level
    per distinct number. Columns listed under ``data.categorical`` are left alone."""
    notes = []
    for spec in columns:
        series = frame[spec.name]
        if spec.kind != "categorical" or spec.name in forced or series.dtype.kind in "biuf":
            continue
        text = series.map(lambda v: v.strip() if isinstance(v, str) else v)
        filled = text.notna() & ~text.isin(["true", "false", "True", "False", "TRUE", "FALSE"])
        numbers = pd.to_numeric(text[filled], errors="coerce")
        stray = numbers.isna()
        if not stray.any() or numbers.notna().sum() < NUMERIC_SHARE * int(filled.sum()):
            continue
        examples = ", ".join(repr(v) for v in pd.unique(text[filled][stray])[:3])
        notes.append(
            f"column {spec.name!r} is read as categorical ({spec.n_levels} levels) although "
            f"{int(numbers.notna().sum())} of its {int(filled.sum())} filled cells are numbers: {examples} on "
            f"{rows_text(stray[stray].index.to_numpy())}; if it is numeric, blank those cells (or list the column "
            "under data.numeric, which names them), or list it under data.categorical to keep it so"
        )
    return tuple(notes)


def load_data(settings: DataSettings) -> PreparedData:
    """Read, check and split the data described by ``settings``; the preprocessing is fitted when first asked for.

    Rows whose target is blank are left out (their rows are in ``dropped_rows``). Every problem of the file is
    reported at once.

    Raises:
        DataError: naming the file and, for each problem, the column and up to five lines.
    """
    path = settings.path
    where = str(path)
    frame = read_table(path, settings.target)
    if len(frame.columns) < 2:  # the target alone: say only that, since a one-column file may not be data at all
        raise DataError(
            f"{where}: no feature columns besides the target {settings.target!r}; add feature columns to the file"
        )
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
    file_rows = kept.index.to_numpy()
    test_fraction = settings.test_fraction
    if test_fraction is None:
        test_fraction = DEFAULT_TEST_FRACTION if len(kept) >= TEST_SPLIT_MIN_ROWS else 0.0
    pool = np.arange(len(y))
    test_pos = np.array([], dtype=np.int64)
    if test_fraction > 0:
        pool, test_pos = split_rows(y, test_fraction, settings.split_seed + 1)
    folds: list[np.ndarray] = []
    if settings.cv_folds:
        smallest = int(min((y[pool] == 0).sum(), (y[pool] == 1).sum()))
        if smallest < settings.cv_folds:
            raise DataError(
                f"{where}: data.cv_folds {settings.cv_folds} needs at least that many rows of each class outside the "
                f"test split, but one class has {smallest}; lower cv_folds (or data.test_fraction)"
            )
        folds = [pool[f] for f in fold_rows(y[pool], settings.cv_folds, settings.split_seed)]
        val_pos = folds[0]
        train_pos = np.setdiff1d(pool, val_pos)
    else:
        train_local, val_local = split_rows(y[pool], settings.validation_fraction, settings.split_seed)
        train_pos, val_pos = pool[train_local], pool[val_local]

    def rows(positions: np.ndarray) -> tuple[int, ...]:
        return tuple(int(r) for r in np.sort(file_rows[positions]))

    return PreparedData(
        notes=_stray_text_notes(kept, columns, settings.categorical),
        features=kept.loc[:, list(names)],
        y=pd.Series(y, index=file_rows),
        columns=tuple(columns),
        labels=labels,
        train_rows=rows(train_pos),
        val_rows=rows(val_pos),
        source=settings.source or where,
        test_rows=rows(test_pos),
        folds=tuple(rows(f) for f in folds),
        dropped_rows=tuple(int(r) for r in dropped),
        path=where,
    )
