from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import hpo
from hpo.config.experiment import parse_experiment
from hpo.config.inference_section import InferenceSettings, ThresholdRule
from hpo.data.loading import load_data
from hpo.search.validation_report import build_validation_report
from hpo.train.objective import TrainedModel
from hpo.views.best_summary import read_saved_inference
from tests.conftest import REPO, inference_space

DATASET = REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv"


def _validation_rows(card: dict) -> tuple[pd.DataFrame, np.ndarray]:
    rows = pd.read_csv(DATASET).iloc[card["data"]["validation_rows"]]
    return rows, (rows[card["target"]] == card["labels"]["positive"]).to_numpy(np.float64)


def test_best_folder_is_a_consistent_set(inference_study: Path) -> None:
    best = inference_study / "inf" / "best"
    assert sorted(p.name for p in best.iterdir()) == ["calibration.json", "model.json", "model.pt", "reliability.png"]
    card = json.loads((best / "model.json").read_text())
    calibration = json.loads((best / "calibration.json").read_text())
    assert calibration["trial"] == card["trial"] and calibration["split"] == "validation"
    assert calibration["threshold"] == card["threshold"] and card["threshold"]["rule"] == "max_f1"
    assert calibration["temperature_scaling"]["enabled"] is True
    assert calibration["temperature_scaling"]["temperature"] == card["temperature"]
    assert calibration["probabilities"]["n_bins"] == 15
    assert calibration["probabilities"]["n"] == card["data"]["n_validation"] == len(card["data"]["validation_rows"])
    assert calibration["probabilities"]["log_loss"] <= calibration["uncalibrated"]["log_loss"]
    with Image.open(best / "reliability.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    saved = read_saved_inference(best)
    assert saved.threshold is not None and saved.threshold.threshold == card["threshold"]["value"]


def test_recorded_quality_and_threshold_are_what_the_predictor_gives(inference_study: Path) -> None:
    best = inference_study / "inf" / "best"
    card = json.loads((best / "model.json").read_text())
    calibration = json.loads((best / "calibration.json").read_text())["probabilities"]
    rows, y = _validation_rows(card)
    predictor = hpo.load_best("inf", root=inference_study)
    p = predictor.predict_proba(rows)
    assert np.mean((p - y) ** 2) == pytest.approx(calibration["brier"], abs=1e-9)
    counts = [b["count"] for b in calibration["reliability"]]
    assert sum(counts) == len(rows)
    predicted = predictor.predict(rows) == card["labels"]["positive"]
    tp = float((predicted & (y == 1)).sum())
    assert tp / predicted.sum() == pytest.approx(card["threshold"]["precision"])
    assert tp / y.sum() == pytest.approx(card["threshold"]["recall"])


@pytest.fixture(scope="module")
def overconfident(inference_study: Path) -> tuple[TrainedModel, object]:
    """The best model with its output layer multiplied by 12: the same ranking, far too sure of itself."""
    best = inference_study / "inf" / "best"
    card = json.loads((best / "model.json").read_text())
    state = torch.load(best / "model.pt", weights_only=True)
    last = max(k for k in state if k.endswith(".weight"))
    state[last] = state[last] * 12
    state[last.replace("weight", "bias")] = state[last.replace("weight", "bias")] * 12
    trained = TrainedModel(card["trial"], card["value"], card["params"], card["model"]["kwargs"], state, {}, 0)
    experiment = parse_experiment(inference_space(), inference_study.parent / "space.yaml")
    return trained, experiment


def test_temperature_scaling_lowers_the_log_loss_of_an_over_confident_model(overconfident) -> None:
    trained, experiment = overconfident
    data = load_data(experiment.data)
    report = build_validation_report(experiment, data, trained)
    assert report.temperature is not None and report.temperature.kept
    assert report.temperature_value > 3
    assert report.quality.log_loss < report.uncalibrated.log_loss
    assert report.temperature.log_loss_after < report.temperature.log_loss_before

    off = replace(experiment, inference=InferenceSettings(ThresholdRule("fixed", 0.5), temperature_scaling=False))
    plain = build_validation_report(off, data, trained)
    assert plain.temperature is None and plain.temperature_value == 1.0
    assert plain.quality == plain.uncalibrated == report.uncalibrated
    assert plain.card_entries()["threshold"]["value"] == 0.5
    files = report.files("inf")
    assert json.loads(files["calibration.json"])["uncalibrated"]["log_loss"] == pytest.approx(
        report.uncalibrated.log_loss
    )
    assert Image.open(io.BytesIO(files["reliability.png"])).format == "PNG"
