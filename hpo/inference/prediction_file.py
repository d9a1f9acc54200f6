"""Predict a CSV file in chunks (memory stays flat) into a CSV of ids, probabilities and labels, written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from hpo.atomic import atomic_output
from hpo.data.feature_checks import ValueProblems, check_columns, feature_values
from hpo.data.loading import read_csv_header
from hpo.errors import DataError
from hpo.inference.predictor import Predictor

__all__ = ["CHUNK_ROWS", "PredictionSummary", "default_output_path", "predict_csv"]

#: Rows read, checked and predicted at a time (a multiple of the predictor's batch, so batches line up).
CHUNK_ROWS = 65536
_FIRST_DATA_LINE = 2  # line 1 is the header


@dataclass(frozen=True)
class PredictionSummary:
    """What ``hpo predict`` wrote."""

    input: Path
    output: Path
    rows: int
    positives: int
    id_columns: tuple[str, ...]
    threshold: float
    labels: tuple[Any, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "rows": self.rows,
            "positives": self.positives,
            "id_columns": list(self.id_columns),
            "threshold": self.threshold,
            "labels": {"negative": self.labels[0], "positive": self.labels[1]},
        }


def default_output_path(input_path: Path) -> Path:
    """``data/new.csv`` -> ``data/new.predictions.csv``."""
    return input_path.with_name(f"{input_path.stem}.predictions.csv")


def predict_csv(
    predictor: Predictor, input_path: Path, output_path: Path | None = None, chunk_rows: int = CHUNK_ROWS
) -> PredictionSummary:
    """Predict every row of ``input_path`` and write ``output_path`` (default :func:`default_output_path`).

    The output has the model's id columns (those the input has) or else ``row`` (the 0-based data row), then
    ``probability`` (of the positive label) and ``label`` (the training data's own value, cut at the saved
    threshold). It is written to a temporary file beside it and renamed at the end: on any error there is no
    output file, and an existing one is left as it was.

    Raises:
        DataError: a missing or unknown column, or rows with text, missing or infinite values (all such rows are
            named by their line in the file, the header being line 1).
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
    check_columns(header, predictor.feature_names, predictor.ignored_columns, where)
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise DataError(f"{output_path}: is the input file; choose another output path (-o)")
    if not output_path.parent.is_dir():
        raise DataError(f"{output_path.parent}: no such folder for the output file; create it or choose another -o")
    ids = [c for c in predictor.id_columns if c in header]
    text_columns = {c: str for c in predictor.ignored_columns if c in header}  # ids kept as written
    with atomic_output(output_path, "w", newline="", encoding="utf-8") as handle:
        rows, positives = _stream(predictor, input_path, handle, ids, text_columns, chunk_rows)
    return PredictionSummary(
        input_path, output_path, rows, positives, tuple(ids), predictor.threshold, predictor.labels
    )


def _stream(
    predictor: Predictor,
    path: Path,
    out: IO[str],
    ids: list[str],
    text_columns: dict[str, type[str]],
    chunk_rows: int,
) -> tuple[int, int]:
    """Write the predictions of ``path`` to ``out``; returns (rows, positive rows)."""
    problems = ValueProblems()
    features = list(predictor.feature_names)
    columns = [*(ids or ["row"]), "probability", "label"]
    rows = positives = 0
    header = True
    try:
        reader = pd.read_csv(
            path,
            chunksize=chunk_rows,
            encoding="utf-8",
            on_bad_lines="error",
            dtype=text_columns,  # type: ignore[arg-type]
        )
        with reader:
            for chunk in reader:
                values = feature_values(chunk.loc[:, features], problems, row_offset=rows)
                if not problems:  # after the first bad row, only look for more of them
                    probabilities = predictor.probabilities_of(values)
                    labels = predictor.labels_of(probabilities)
                    frame = chunk.loc[:, ids] if ids else pd.DataFrame({"row": range(rows, rows + len(chunk))})
                    frame = frame.reset_index(drop=True).assign(probability=probabilities, label=labels)
                    frame.to_csv(out, header=header, index=False, columns=columns)
                    header = False
                    positives += int((probabilities >= predictor.threshold).sum())
                rows += len(chunk)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: rows do not match the header ({exc}); every row needs one field per column") from None
    if problems:
        raise DataError(problems.message(str(path), "line", _FIRST_DATA_LINE, "no output was written"))
    if header:
        out.write(",".join(columns) + "\n")
    return rows, positives
