from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import hpo
from hpo.errors import DataError
from hpo.inference.loading import load_model
from hpo.inference.prediction_file import default_output_path, predict_csv
from hpo.inference.predictor import Predictor
from tests.conftest import REPO

DATASET = REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def predictor(inference_study: Path) -> Predictor:
    return hpo.load_best("inf", root=inference_study)


@pytest.fixture(scope="module")
def card(inference_study: Path) -> dict:
    return json.loads((inference_study / "inf" / "best" / "model.json").read_text())


def test_validation_rows_reproduce_the_recorded_auroc(predictor: Predictor, card: dict, tmp_path: Path) -> None:
    source = tmp_path / "validation.csv"
    pd.read_csv(DATASET).iloc[card["data"]["validation_rows"]].to_csv(source, index=False)
    summary = predict_csv(predictor, source)
    assert summary.output == tmp_path / "validation.predictions.csv" == default_output_path(source)
    out = pd.read_csv(summary.output)
    assert list(out.columns) == ["row", "probability", "label"]
    assert out["row"].tolist() == list(range(len(out)))
    truth = pd.read_csv(source)[card["target"]] == card["labels"]["positive"]
    auroc = roc_auc_score(truth, out["probability"])
    assert auroc == pytest.approx(card["value"], abs=1e-6)
    assert auroc == pytest.approx(card["metrics"]["val/auroc"], abs=1e-6)
    assert summary.rows == len(out) and summary.positives == int((out["label"] == "malignant").sum())
    assert ((out["probability"] >= card["threshold"]["value"]) == (out["label"] == "malignant")).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_chunks_give_the_same_file_as_one_pass(predictor: Predictor, tmp_path: Path) -> None:
    whole = predict_csv(predictor, DATASET, tmp_path / "whole.csv")
    chunked = predict_csv(predictor, DATASET, tmp_path / "chunked.csv", chunk_rows=50)
    assert whole.rows == chunked.rows == 569
    a, b = pd.read_csv(whole.output), pd.read_csv(chunked.output)
    assert a["row"].tolist() == b["row"].tolist() == list(range(569))
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-7)
    assert (a["label"] == b["label"]).all()


def test_recorded_id_columns_are_copied_as_written(inference_study: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(inference_study / "inf" / "best", folder)
    card = json.loads((folder / "model.json").read_text())
    card["data"]["id_columns"] = ["patient"]
    (folder / "model.json").write_text(json.dumps(card))  # the sha256 covers model.pt only
    frame = pd.read_csv(DATASET).head(5)
    frame.insert(0, "patient", ["007", "008", "x-9", "010", "011"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    summary = predict_csv(load_model(folder), tmp_path / "in.csv", tmp_path / "out.csv")
    assert summary.id_columns == ("patient",)
    out = pd.read_csv(tmp_path / "out.csv", dtype={"patient": str})
    assert list(out.columns) == ["patient", "probability", "label"]
    assert out["patient"].tolist() == ["007", "008", "x-9", "010", "011"]


def _lines(tmp_path: Path, edit: dict[int, tuple[str, str]] | None = None, extra: str = "") -> Path:
    """The data set's first 30 rows, with cell edits {line: (column, text)} (line 1 is the header)."""
    frame = pd.read_csv(DATASET).head(30).astype(object)
    for line, (column, text) in (edit or {}).items():
        frame.loc[line - 2, column] = text
    path = tmp_path / "in.csv"
    path.write_text(frame.to_csv(index=False) + extra, encoding="utf-8")
    return path


BAD_FILES = {
    "text": (
        lambda t: _lines(t, {5: ("mean_area", "n/a?"), 9: ("mean_area", "x")}),
        "numeric column 'mean_area' holds text at lines 5, 9",
    ),
    "too many fields": (
        lambda t: _lines(t, extra="1," * 31 + "1\n"),
        "rows do not match the header: line 32 has 32 fields, the header 31; every row needs one field per column",
    ),
    "unclosed quote": (
        lambda t: _lines(t, extra='1,"2\n'),
        'a quoted value opened on line 32 is never closed (a lone " in a value)',
    ),
    "semicolons": (
        lambda t: _raw(t, pd.read_csv(DATASET).head(3).to_csv(index=False, sep=";").encode()),
        "(its header holds ';': save the file with commas between the columns)",
    ),
    "repeated column": (
        lambda t: _raw(
            t, pd.read_csv(DATASET).head(3).assign(dup=1).to_csv(index=False).replace(",dup", ",mean_area", 1).encode()
        ),
        "column 'mean_area' appears more than once",
    ),
    "missing column": (
        lambda t: _write(t, pd.read_csv(DATASET).head(3).drop(columns="mean_area")),
        "missing feature column 'mean_area'",
    ),
    "empty file": (lambda t: _raw(t, b""), "is empty"),
    "not UTF-8": (lambda t: _raw(t, "mean_radius\n\xe9\n".encode("latin-1")), "is not UTF-8"),
    "no such file": (lambda t: t / "nope.csv", "no such file"),
}


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(tmp_path / "in.csv", index=False)
    return tmp_path / "in.csv"


def _raw(tmp_path: Path, payload: bytes) -> Path:
    (tmp_path / "in.csv").write_bytes(payload)
    return tmp_path / "in.csv"


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_names_lines_and_writes_nothing(predictor: Predictor, tmp_path: Path, case: str) -> None:
    make, message = BAD_FILES[case]
    source = make(tmp_path)
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    with pytest.raises(DataError) as caught:
        predict_csv(predictor, source, out, chunk_rows=8)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(source))
    assert "\n" not in str(caught.value) and "C error" not in str(caught.value)
    if case == "missing column":
        assert str(caught.value).endswith("(no output was written)")
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({source.name, "out.csv"} - {"nope.csv"})


def test_output_paths_that_cannot_work(predictor: Predictor, tmp_path: Path) -> None:
    source = _lines(tmp_path)
    with pytest.raises(DataError, match="is the input file"):
        predict_csv(predictor, source, source)
    with pytest.raises(DataError, match="no such folder for the output file"):
        predict_csv(predictor, source, tmp_path / "missing" / "out.csv")


def test_header_only_file_gives_a_header_only_output(predictor: Predictor, tmp_path: Path) -> None:
    source = _write(tmp_path, pd.read_csv(DATASET).head(0))
    summary = predict_csv(predictor, source)
    assert summary.rows == 0 and summary.output.read_text() == "row,probability,label\n"


def test_blanks_infinities_and_extra_columns_are_handled_and_counted(predictor: Predictor, tmp_path: Path) -> None:
    source = _lines(tmp_path, {3: ("worst_area", ""), 27: ("worst_area", " "), 4: ("mean_radius", "inf")})
    frame = pd.read_csv(source, keep_default_na=False, dtype=str).assign(notes="x")
    frame.to_csv(source, index=False)
    summary = predict_csv(predictor, source, tmp_path / "out.csv", chunk_rows=8)
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == summary.rows and out["probability"].notna().all()
    assert summary.blanks == {"worst_area": 2}
    assert summary.clipped == {"mean_radius": 1}
    assert "notes" in summary.ignored_columns


def _with_id_columns(inference_study: Path, folder: Path, id_columns: list[str]) -> Predictor:
    """The inference study's model, copied to ``folder`` with ``id_columns`` recorded in its model.json."""
    shutil.copytree(inference_study / "inf" / "best", folder)
    card = json.loads((folder / "model.json").read_text())
    card["data"]["id_columns"] = id_columns
    (folder / "model.json").write_text(json.dumps(card))  # the sha256 covers model.pt only
    model = load_model(folder)
    assert isinstance(model, Predictor)
    return model


def test_copied_columns_named_like_an_output_column_are_refused(inference_study: Path, tmp_path: Path) -> None:
    model = _with_id_columns(inference_study, tmp_path / "model", ["probability"])
    frame = pd.read_csv(DATASET).head(5)
    frame.insert(0, "probability", ["a", "b", "c", "d", "e"])
    source = _write(tmp_path, frame.assign(label="x", patient=range(5)))
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    with pytest.raises(DataError) as caught:
        predict_csv(model, source, out)
    message = str(caught.value)
    assert message.startswith(f"{source}: the model's id column 'probability' (data.id_columns in its model.json)")
    assert "rename the column in the input file" in message and message.endswith("(no output was written)")
    with pytest.raises(DataError, match=r"--keep columns 'label', 'probability' would be copied to the output"):
        predict_csv(model, source, out, keep=["patient", "label", "probability"])
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "model", "out.csv"]
    # --keep with other columns replaces the id columns, and then nothing clashes.
    summary = predict_csv(model, source, out, keep=["patient", "patient"])
    assert summary.id_columns == ("patient",)
    assert list(pd.read_csv(out).columns) == ["patient", "probability", "label"]
