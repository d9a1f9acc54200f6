from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hpo
import hpo.inference.predictor
from hpo.errors import DataError
from hpo.inference.predictor import Predictor
from tests.conftest import REPO

DATASET = REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def predictor(inference_study: Path) -> Predictor:
    return hpo.load_best("inf", root=inference_study)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(DATASET).head(40)


def test_load_best_gives_a_predictor_with_the_saved_settings(predictor: Predictor, inference_study: Path) -> None:
    card = json.loads((inference_study / "inf" / "best" / "model.json").read_text())
    assert isinstance(predictor, hpo.Predictor)
    assert not predictor.model.training
    assert predictor.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert predictor.threshold == card["threshold"]["value"]
    assert predictor.temperature == card["temperature"]
    assert predictor.labels == ("benign", "malignant")
    assert predictor.feature_names == tuple(card["features"])


def test_dataframe_by_name_and_array_in_training_order_agree(predictor: Predictor, rows: pd.DataFrame) -> None:
    features = list(predictor.feature_names)
    by_name = predictor.predict_proba(rows[[*features[::-1], "diagnosis"]])  # shuffled, with the target column
    in_order = predictor.predict_proba(rows[features].to_numpy())
    assert by_name.dtype == np.float64 and by_name.shape == (40,)
    np.testing.assert_array_equal(by_name, in_order)
    np.testing.assert_array_equal(predictor.predict_proba(rows[features].values.tolist()), in_order)
    labels = predictor.predict(rows[features])
    assert set(labels) <= {"benign", "malignant"}
    np.testing.assert_array_equal(labels == "malignant", in_order >= predictor.threshold)


def test_batches_give_the_same_probabilities(
    predictor: Predictor, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = predictor.predict_proba(rows)
    monkeypatch.setattr(hpo.inference.predictor, "BATCH_ROWS", 7)
    np.testing.assert_allclose(predictor.predict_proba(rows), whole, atol=1e-7)


def test_the_plain_model_and_the_predictor_agree(predictor: Predictor, rows: pd.DataFrame) -> None:
    features = rows[list(predictor.feature_names)].to_numpy(dtype=np.float64)
    columns = predictor.preprocessor.columns
    x = ((features - [c.center for c in columns]) / [c.scale for c in columns]).astype(np.float32)  # standard scaling
    with torch.no_grad():
        logits = predictor.model(torch.from_numpy(x).to(predictor.device)).cpu()
    expected = torch.sigmoid(logits / predictor.temperature).numpy()
    np.testing.assert_allclose(predictor.predict_proba(rows), expected, atol=1e-6)


def _with(rows: pd.DataFrame, column: str, positions: list[int], value: object) -> pd.DataFrame:
    bad = rows.copy()
    if not isinstance(value, float):
        bad[column] = bad[column].astype(object)
    for i in positions:
        bad.iloc[i, bad.columns.get_loc(column)] = value
    return bad


def test_bad_inputs_name_columns_and_rows(predictor: Predictor, rows: pd.DataFrame) -> None:
    cases = [
        (rows.drop(columns=["mean_area", "worst_area"]), "missing feature columns 'mean_area', 'worst_area'"),
        (rows.rename(columns={"mean_area": "area"}), "missing feature column 'mean_area'"),
        (_with(rows, "worst_area", [2], "big"), "numeric column 'worst_area' holds text at line 2 (e.g. 'big')"),
        (rows.to_numpy()[:, :5], "expected rows of 30 features in training order"),
        (np.zeros(30), "got an array of shape (30,)"),
        (pd.concat([rows, rows[["mean_area"]]], axis=1), "column 'mean_area' appear"),
    ]
    for bad, message in cases:
        with pytest.raises(DataError) as caught:
            predictor.predict_proba(bad)
        assert message in str(caught.value), str(caught.value)
        assert str(caught.value).startswith("predict_proba: ")


def test_blanks_unseen_values_and_extra_columns_give_finite_probabilities(
    predictor: Predictor, rows: pd.DataFrame
) -> None:
    messy = _with(_with(rows, "mean_radius", [3, 9], float("nan")), "mean_texture", [5], float("inf"))
    messy = messy.assign(extra=1, note="anything")
    probabilities = predictor.predict_proba(messy)
    assert probabilities.shape == (len(rows),) and np.isfinite(probabilities).all()
    untouched = [i for i in range(len(rows)) if i not in (3, 5, 9)]
    np.testing.assert_allclose(probabilities[untouched], predictor.predict_proba(rows)[untouched], atol=1e-7)
    huge = _with(rows, "mean_area", [0], 1e308)
    assert np.isfinite(predictor.predict_proba(huge)).all()
