"""Raw CSVs end to end: text, booleans, integer codes, blanks and blank targets train, predict and load back alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

import hpo
from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.data.loading import load_data
from hpo.data.preprocessing import read_csv_kwargs
from hpo.paths import StudyPaths
from hpo.train.objective import Objective, TrainedModel
from tests.conftest import REPO

pytestmark = pytest.mark.slow
REAL = REPO / "tests" / "data" / "csv"


def messy_frame(rows: int = 320, seed: int = 0) -> pd.DataFrame:
    """Numbers with blanks, text with blanks, booleans, an integer code, an id-like text column, blank targets."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows).round(1)
    city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], rows)
    member = rng.random(rows) < 0.4
    occupation = rng.integers(1, 6, rows)
    score = 0.08 * (age - 40) + 1.5 * (city == "Paris") - 1.0 * member + 0.4 * (occupation == 3)
    bought = np.where(score + rng.normal(0, 0.7, rows) > 0.3, "yes", "no")
    frame = pd.DataFrame(
        {
            "customer": [f"C{i:05d}" for i in range(rows)],
            "age": age.astype(object),
            "city": city.astype(object),
            "member": member,
            "occupation": occupation,
            "ticket": [f"T-{rng.integers(10**6)}" for _ in range(rows)],
            "bought": bought.astype(object),
        }
    )
    frame.loc[rng.choice(rows, 25, replace=False), "age"] = rng.choice(["", "NA", " ", "NaN"], 25)
    frame.loc[rng.choice(rows, 20, replace=False), "city"] = ""
    frame.loc[[r for r in (7, 150, 301) if r < rows], "bought"] = ""
    return frame


def _space(csv: Path, target: str, name: str, **data: object) -> dict:
    return {
        "study": {"name": name, "n_trials": 3, "sampler": {"name": "random", "seed": 3}, "pruner": "none"},
        "data": {"path": str(csv), "target": target, **data},
        "training": {"max_epochs": 6, "batch_size": 64},
        "params": {
            "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
            "hidden_size": 32,
            "preprocessing.numeric": {"type": "categorical", "choices": ["standard", "robust", "quantile"]},
        },
    }


def _run(tmp_path: Path, space: dict) -> str:
    path = tmp_path / f"{space['study']['name']}.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(path), "--root", str(tmp_path / "studies")])
    assert result.exit_code == 0, result.output
    return result.output


def _validation_auroc(csv: Path, card: dict, probabilities: np.ndarray) -> float:
    frame = pd.read_csv(csv, **read_csv_kwargs())
    rows = card["data"]["validation_rows"]
    y = frame[card["target"]].iloc[rows].astype(str).str.strip() == str(card["labels"]["positive"])
    return float(roc_auc_score(y, probabilities[rows]))


def test_messy_csv_trains_predicts_raw_rows_and_reproduces_its_auroc(tmp_path: Path) -> None:
    csv = tmp_path / "messy.csv"
    frame = messy_frame()
    frame.to_csv(csv, index=False)
    labelled = frame[frame["bought"] != ""]
    blank_ages = int(labelled["age"].astype(str).str.strip().isin(["", "NA", "NaN"]).sum())
    output = _run(tmp_path, _space(csv, "bought", "messy", id_columns=["customer"], categorical=["occupation"]))
    assert "left out 3 rows whose target is blank (lines 9, 152, 303)" in output
    for line in ("age ", "numeric", "city ", "categorical", "occupation ", "ticket "):
        assert line in output
    card = json.loads((tmp_path / "studies" / "messy" / "best" / "model.json").read_text())
    kinds = {c["name"]: c["kind"] for c in card["columns"]}
    assert kinds == {
        "age": "numeric",
        "city": "categorical",
        "member": "categorical",
        "occupation": "categorical",
        "ticket": "categorical",
    }
    assert {c["name"]: c["missing"] for c in card["columns"]}["age"] == blank_ages > 0
    assert card["data"]["n_dropped"] == 3

    # New rows: a city never seen, blanks everywhere, an extra column; the target column left out.
    new = messy_frame(40, seed=1).drop(columns="bought").assign(note="x")
    new.loc[0, "city"] = "Marseille"
    new.loc[1, ["age", "city"]] = ["", " "]
    new_csv = tmp_path / "new.csv"
    new.to_csv(new_csv, index=False)
    result = CliRunner().invoke(
        main, ["predict", "--study", "messy", "--root", str(tmp_path / "studies"), str(new_csv), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["unseen_levels"]["city"] >= 1 and summary["blanks"]["age"] >= 1
    assert "note" in summary["ignored_columns"] and summary["id_columns"] == ["customer"]
    written = pd.read_csv(summary["output"])
    assert np.isfinite(written["probability"]).all() and list(written["customer"]) == list(new["customer"])
    best = hpo.load_best("messy", root=tmp_path / "studies")
    np.testing.assert_allclose(
        best.predict_proba(pd.read_csv(new_csv, **read_csv_kwargs())), written["probability"], atol=1e-6
    )

    # The recorded validation AUROC comes back from the raw training CSV.
    probabilities = best.predict_proba(pd.read_csv(csv, **read_csv_kwargs()))
    assert _validation_auroc(csv, card, probabilities) == pytest.approx(card["metrics"]["val/auroc"], abs=1e-6)


@pytest.mark.parametrize(("name", "target"), [("titanic", "survived"), ("default", "default")])
def test_real_data_trains_and_predicts_from_raw_rows(tmp_path: Path, name: str, target: str) -> None:
    csv = REAL / f"{name}.csv"
    extra = {"id_columns": ["name"]} if name == "titanic" else {}
    _run(tmp_path, _space(csv, target, name, **extra))
    card = json.loads((tmp_path / "studies" / name / "best" / "model.json").read_text())
    best = hpo.load_best(name, root=tmp_path / "studies")
    probabilities = best.predict_proba(pd.read_csv(csv, **read_csv_kwargs()))
    assert np.isfinite(probabilities).all()
    assert _validation_auroc(csv, card, probabilities) == pytest.approx(card["metrics"]["val/auroc"], abs=1e-6)
    assert card["metrics"]["val/auroc"] > 0.7  # both tables carry real signal (sex, class; balance)


def test_each_trial_trains_and_records_its_own_scaling(tmp_path: Path) -> None:
    csv = tmp_path / "messy.csv"
    messy_frame().to_csv(csv, index=False)
    space = _space(csv, "bought", "scalings", id_columns=["customer"])
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    exp = load_experiment(path)
    data = load_data(exp.data)
    kept: list[TrainedModel] = []
    objective = Objective(
        exp, data, StudyPaths(tmp_path / "studies", "scalings"), lambda t, m, siblings: kept.append(m)
    )
    inputs = {}
    for number, scaling in enumerate(("standard", "robust", "quantile")):
        value = objective(optuna.trial.FixedTrial({"lr": 0.01, "preprocessing.numeric": scaling}, number=number))
        trained = kept[-1]
        assert trained.scaling == scaling and trained.params["preprocessing.numeric"] == scaling
        prepared = data.prepared(scaling)
        assert prepared.preprocessor.scaling == scaling
        model = hpo.MLP(**trained.model_kwargs)
        model.load_state_dict(trained.state_dict)
        model.eval()
        import torch

        with torch.no_grad():
            p = torch.sigmoid(model(torch.from_numpy(prepared.x_val))).numpy()
        assert roc_auc_score(data.y_val, p) == pytest.approx(value, abs=1e-6)
        inputs[scaling] = prepared.x_val[:, 0]
    assert not np.allclose(inputs["standard"], inputs["robust"]) and not np.allclose(
        inputs["standard"], inputs["quantile"]
    )
    assert np.abs(inputs["robust"]).max() < 3.0  # smooth clipping bounds robust-scaled inputs
