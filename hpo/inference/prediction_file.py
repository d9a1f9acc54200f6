"""Predict a CSV file in chunks (memory stays flat) into a CSV of ids, probabilities and labels, written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from hpo.atomic import atomic_output
from hpo.data.loading import open_regular_file, other_separator, parser_error_text, read_csv_header
from hpo.data.preprocessing import TransformCounts, read_csv_kwargs
from hpo.errors import DataError
from hpo.inference.predictor import EnsemblePredictor, Predictor

__all__ = ["CHUNK_ROWS", "PredictionSummary", "default_output_path", "predict_csv"]

#: Rows read, checked and predicted at a time (a multiple of the predictor's batch, so batches line up).
CHUNK_ROWS = 65536
_FIRST_DATA_LINE = 2  # line 1 is the header
#: The columns the output always ends with; a copied (id or kept) column may not be named as one of them.
_OUTPUT_COLUMNS = ("probability", "label")


@dataclass(frozen=True)
class PredictionSummary:
    """What ``hpo predict`` wrote, and what it met in the input."""

    input: Path
    output: Path
    rows: int
    positives: int
    id_columns: tuple[str, ...]
    threshold: float
    labels: tuple[Any, Any]
    ignored_columns: tuple[str, ...] = ()  # input columns that are neither features nor kept
    blanks: dict[str, int] = field(default_factory=dict)  # feature column -> blank cells (imputed or own level)
    unseen: dict[str, int] = field(default_factory=dict)  # categorical column -> cells with a level new to the model
    clipped: dict[str, int] = field(default_factory=dict)  # numeric column -> cells beyond the clipping bound

    def to_json(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "rows": self.rows,
            "positives": self.positives,
            "id_columns": list(self.id_columns),
            "threshold": self.threshold,
            "labels": {"negative": self.labels[0], "positive": self.labels[1]},
            "ignored_columns": list(self.ignored_columns),
            "blanks": self.blanks,
            "unseen_levels": self.unseen,
            "clipped": self.clipped,
        }


def _quoted(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def default_output_path(input_path: Path) -> Path:
    """``data/new.csv`` -> ``data/new.predictions.csv``."""
    return input_path.with_name(f"{input_path.stem}.predictions.csv")


def predict_csv(
    predictor: Predictor | EnsemblePredictor,
    input_path: Path,
    output_path: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    keep: Sequence[str] = (),
) -> PredictionSummary:
    """Predict every row of the raw CSV ``input_path`` and write ``output_path`` (default :func:`default_output_path`).

    The input has the training file's shape: the feature columns by name (any order), blanks and levels the model
    never saw are handled as in training; the target and any other column may be there and are ignored. The output
    has the ``keep`` columns (default: the model's id columns that the input has) or else ``row`` (the 0-based data
    row), then ``probability`` (of the positive label) and ``label`` (the training data's own value, cut at the
    saved threshold). It is written to a temporary file beside it and renamed at the end: on any error there is no
    output file, and an existing one is left as it was.

    The input must be a regular file (a named pipe or a device is refused before it is opened); it is streamed in
    chunks of ``chunk_rows``, so it is not capped in size.

    Raises:
        DataError: a missing feature or kept column, a copied column named ``probability`` or ``label`` (the
            output's own), text in a numeric column (named by line, the header being line 1), an input that is not a
            regular file, or an output that cannot be written (disk full).
    """
    input_path = Path(input_path)
    output_path = Path(output_path) if output_path is not None else default_output_path(input_path)
    where = str(input_path)
    header = read_csv_header(
        input_path,
        missing="no such file; pass the CSV file to predict",
        folder="pass a CSV file",
        empty="a CSV with a header row naming the feature columns is needed",
    )
    names = set(header)
    keep = list(dict.fromkeys(keep))  # a column kept twice is copied once
    missing = [f for f in predictor.feature_names if f not in names]
    unknown_keep = [k for k in keep if k not in names]
    repeated = sorted({h for h in header if header.count(h) > 1} & {*predictor.feature_names, *keep})
    problems = []
    if missing:
        separator = other_separator(header)
        problems.append(
            f"missing feature column{'s' if len(missing) > 1 else ''} {_quoted(missing)} (the model needs its "
            f"{len(predictor.feature_names)} features by name: {_quoted(predictor.feature_names, 40)})"
            + (f" (its header holds {separator!r}: save the file with commas between the columns)" if separator else "")
        )
    if unknown_keep:
        problems.append(f"--keep column{'s' if len(unknown_keep) > 1 else ''} {_quoted(unknown_keep)} not in the file")
    if repeated:
        plural = len(repeated) > 1
        problems.append(
            f"column{'s' if plural else ''} {_quoted(repeated)} appear{'' if plural else 's'} more than once"
        )
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}; fix the file's header (no output was written)")
    ids = list(keep) if keep else [c for c in predictor.id_columns if c in names]
    _refuse_clashing_copies(where, ids, kept=bool(keep))
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise DataError(f"{output_path}: is the input file; choose another output path (-o)")
    if not output_path.parent.is_dir():
        raise DataError(f"{output_path.parent}: no such folder for the output file; create it or choose another -o")
    ignored = tuple(h for h in header if h not in {*predictor.feature_names, *ids, predictor.card.get("target")})
    try:
        with atomic_output(output_path, "w", newline="", encoding="utf-8") as handle:
            rows, positives, counts = _stream(predictor, input_path, handle, ids, chunk_rows)
    except OSError as exc:
        raise DataError(
            f"{output_path}: cannot write the predictions ({exc.strerror or exc}); no output was written and an "
            "existing file there is unchanged. Free disk space or choose another output path (-o)"
        ) from None
    per_column = counts.columns if counts is not None else ()
    return PredictionSummary(
        input=input_path,
        output=output_path,
        rows=rows,
        positives=positives,
        id_columns=tuple(ids),
        threshold=predictor.threshold,
        labels=predictor.labels,
        ignored_columns=ignored,
        blanks={c.name: c.blanks for c in per_column if c.blanks},
        unseen={c.name: c.unseen for c in per_column if c.unseen},
        clipped={c.name: c.clipped for c in per_column if c.clipped},
    )


def _refuse_clashing_copies(where: str, ids: Sequence[str], *, kept: bool) -> None:
    """Refuse to copy a column named as one the output writes itself (``probability``, ``label``): the output would
    have two columns of that name, and readers take the predicted one for the copied values or the other way round.

    Raises:
        DataError: naming the columns and how to copy them under another name.
    """
    clashing = [c for c in ids if c in _OUTPUT_COLUMNS]
    if not clashing:
        return
    s, them = ("s", "them") if len(clashing) > 1 else ("", "it")
    if kept:
        which = f"--keep column{s} {_quoted(clashing)}"
        fix = f"rename the column{s} in the input file and pass the new name{s} to --keep, or leave {them} out"
    else:
        which = f"the model's id column{s} {_quoted(clashing)} (data.id_columns in its model.json)"
        fix = (
            f"rename the column{s} in the input file (then pass the new name{s} to --keep to copy {them}), or pass "
            "--keep with the columns to copy instead"
        )
    raise DataError(
        f"{where}: {which} would be copied to the output, which writes its own {_quoted(_OUTPUT_COLUMNS)} columns, "
        f"so the output would hold two columns of the same name; {fix} (no output was written)"
    )


def _stream(
    predictor: Predictor | EnsemblePredictor, path: Path, out: IO[str], ids: list[str], chunk_rows: int
) -> tuple[int, int, TransformCounts | None]:
    """Write the predictions of ``path`` to ``out``; returns (rows, positive rows, what the preprocessing met)."""
    columns = [*(ids or ["row"]), "probability", "label"]
    rows = positives = 0
    counts: TransformCounts | None = None
    header = True
    try:
        # Opened again for the rows: the file read for its header could have been replaced by a pipe since.
        with (
            open_regular_file(path, fix="pass a CSV file") as source,
            pd.read_csv(
                source,
                chunksize=chunk_rows,
                encoding="utf-8-sig",
                on_bad_lines="error",
                dtype={c: str for c in ids},  # kept columns are copied as written
                **{**read_csv_kwargs(), "low_memory": True},
            ) as reader,
        ):
            for chunk in reader:
                probabilities, chunk_counts = predictor.score_rows(chunk, str(path), _FIRST_DATA_LINE + rows)
                counts = chunk_counts if counts is None else counts + chunk_counts
                labels = predictor.labels_of(probabilities)
                frame = chunk.loc[:, ids] if ids else pd.DataFrame({"row": range(rows, rows + len(chunk))})
                frame = frame.reset_index(drop=True).assign(probability=probabilities, label=labels)
                frame.to_csv(out, header=header, index=False, columns=columns)
                header = False
                positives += int((probabilities >= predictor.threshold).sum())
                rows += len(chunk)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file any more (it was removed while hpo read it)") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{path}: rows do not match the header: {parser_error_text(exc)}; every row needs one field per column "
            "(quote a value that holds a comma)"
        ) from None
    if header:
        out.write(",".join(columns) + "\n")
    return rows, positives, counts
