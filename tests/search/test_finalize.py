"""Numbers you can trust, end to end: the test split, cross-validation, refit and the top-k ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import hpo
from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.data.loading import load_data
from hpo.data.preprocessing import read_csv_kwargs
from hpo.inference.predictor import EnsemblePredictor, Predictor
from hpo.paths import StudyPaths
from hpo.train.objective import Objective

pytestmark = pytest.mark.slow


def _csv(path: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    colour = rng.choice(["red", "green", "blue"], rows)
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.8 * (colour == "red")
    y = (logit + rng.normal(0, 1.0, rows) > 0).astype(int)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "colour": colour, "y": y}).to_csv(
        path, index=False
    )
    return path


def _space(csv: Path, name: str, n_trials: int = 4, **sections: dict) -> dict:
    doc = {
        "study": {"name": name, "n_trials": n_trials, "sampler": {"name": "random", "seed": 0}, "pruner": "none"},
        "data": {"path": str(csv), "target": "y", "split_seed": 3},
        "training": {"max_epochs": 6, "batch_size": 64},
        "params": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}, "hidden_size": 16},
    }
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


def _run(tmp_path: Path, doc: dict) -> tuple[str, str]:
    path = tmp_path / f"{doc['study']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(path), "--root", str(tmp_path / "studies")])
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout, result.stderr


def _card(tmp_path: Path, name: str, folder: str = "best") -> dict:
    return json.loads((tmp_path / "studies" / name / folder / "model.json").read_text())


def test_a_test_split_is_held_out_and_scored_once_with_an_interval(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "data.csv", 520)
    stdout, _ = _run(tmp_path, _space(csv, "held"))
    card = _card(tmp_path, "held")
    test = card["test"]
    assert test["n"] == len(card["data"]["test_rows"]) == card["data"]["n_test"] == round(0.2 * 520)
    assert test["auroc_low"] < test["auroc"] < test["auroc_high"]
    assert "Test split (104 held-out rows" in stdout
    # The test rows were in no trial's training or validation rows.
    exp = load_experiment(tmp_path / "held.yaml")
    data = load_data(exp.data)
    assert set(data.test_rows).isdisjoint({*data.train_rows, *data.val_rows})
    assert list(data.test_rows) == card["data"]["test_rows"] and set(card["data"]["validation_rows"]) == set(
        data.val_rows
    )
    # The recorded numbers are what the saved model gives on those rows of the raw file.
    frame = pd.read_csv(csv, **read_csv_kwargs())
    model = hpo.load_best("held", root=tmp_path / "studies")
    p = model.predict_proba(frame.iloc[card["data"]["test_rows"]])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(frame["y"].iloc[card["data"]["test_rows"]], p) == pytest.approx(test["auroc"], abs=1e-9)
    shown = CliRunner().invoke(main, ["best", "--study", "held", "--root", str(tmp_path / "studies"), "--json"])
    assert json.loads(shown.stdout)["test"]["auroc"] == test["auroc"]
    report = CliRunner().invoke(
        main, ["report", "--study", "held", "--root", str(tmp_path / "studies"), "--out", str(tmp_path / "report")]
    )
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "Test split: the saved model (104 held-out rows" in page and "validation split, used to select it" in page
    # hpo evaluate gives the same numbers again.
    again = CliRunner().invoke(main, ["evaluate", "--study", "held", "--root", str(tmp_path / "studies"), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["test"]["auroc"] == test["auroc"]


def test_optuna_values_do_not_depend_on_the_test_labels(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "data.csv", 520)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(_space(csv, "labels")), encoding="utf-8")
    exp = load_experiment(path)
    data = load_data(exp.data)
    flipped_y = data.y.copy()
    flipped_y.loc[list(data.test_rows)] = 1 - flipped_y.loc[list(data.test_rows)]
    flipped = type(data)(
        **{**{f: getattr(data, f) for f in data.__dataclass_fields__ if f != "_variants"}, "y": flipped_y}
    )
    assert not np.array_equal(data.y_test, flipped.y_test)
    values = []
    for each in (data, flipped):
        objective = Objective(exp, each, StudyPaths(tmp_path / "studies", "labels"))
        values.append([objective(optuna.trial.FixedTrial({"lr": lr}, number=n)) for n, lr in enumerate((0.003, 0.02))])
    assert values[0] == values[1]


def test_cross_validation_on_32_rows_warns_and_takes_the_mean_of_the_folds(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "small.csv", 32)
    _, stderr = _run(tmp_path, _space(csv, "cv", n_trials=2, data={"cv_folds": 4}))
    assert "small data" in stderr and "each of the 4 CV folds" in stderr
    study = optuna.load_study(study_name="cv", storage=f"sqlite:///{tmp_path}/studies/cv/study.db")
    for trial in study.trials:
        assert len(trial.user_attrs["cv_values"]) == 4
        assert trial.value == pytest.approx(float(np.mean(trial.user_attrs["cv_values"])), abs=1e-12)
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3]  # reported after each fold
    card = _card(tmp_path, "cv")
    assert card["data"]["cv_folds"] == 4 and "test" not in card  # 32 rows: no test split by default
    assert card["data"]["n_per_class"]["fold_0"]["positive"] > 0


def test_refit_trains_the_saved_model_on_training_and_validation_rows(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "data.csv", 300)
    _run(tmp_path, _space(csv, "refit", training={"refit": True}))
    card = _card(tmp_path, "refit")
    exp = load_experiment(tmp_path / "refit.yaml")
    data = load_data(exp.data)
    assert card["refit"]["rows"] == card["data"]["n_train"] == len(data.train_rows) + len(data.val_rows)
    study = optuna.load_study(study_name="refit", storage=f"sqlite:///{tmp_path}/studies/refit/study.db")
    assert card["refit"]["from_trial"] == study.best_trial.number
    assert card["refit"]["epochs"] == study.best_trial.user_attrs["best_epoch"] + 1
    model = hpo.load_best("refit", root=tmp_path / "studies")
    assert isinstance(model, Predictor)
    p = model.predict_proba(pd.read_csv(csv, **read_csv_kwargs()))
    assert np.isfinite(p).all() and len(p) == 300
    # Its preprocessing was fitted on the training and validation rows together (the mean of both).
    a = data.features.loc[list({*data.train_rows, *data.val_rows}), "a"].astype(float)
    centre = next(c for c in card["preprocessing"]["columns"] if c["name"] == "a")["center"]
    assert centre == pytest.approx(a.mean(), abs=1e-9)


def test_the_top_k_ensemble_is_saved_loaded_and_scored(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "data.csv", 520)
    _run(tmp_path, _space(csv, "ens", n_trials=4, inference={"ensemble": {"top_k": 3}}))
    card = _card(tmp_path, "ens")
    assert card["test"]["auroc"] is not None and card["ensemble_test"]["auroc"] is not None
    ensemble_card = _card(tmp_path, "ens", "best/ensemble")
    study = optuna.load_study(study_name="ens", storage=f"sqlite:///{tmp_path}/studies/ens/study.db")
    top = sorted((t for t in study.trials if t.value is not None), key=lambda t: (-t.value, t.number))[:3]
    assert ensemble_card["member_trials"] == [t.number for t in top]
    model = hpo.load_best("ens", root=tmp_path / "studies")
    assert isinstance(model, EnsemblePredictor) and len(model.members) == 3
    frame = pd.read_csv(csv, **read_csv_kwargs())
    expected = np.mean([member.predict_proba(frame) for member in model.members], axis=0)
    np.testing.assert_allclose(model.predict_proba(frame), expected, atol=1e-6)
    single = hpo.load_best("ens", root=tmp_path / "studies", ensemble=False)
    assert isinstance(single, Predictor)
    # hpo predict uses the ensemble too.
    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(
        main, ["predict", "--study", "ens", "--root", str(tmp_path / "studies"), str(csv), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(out)["probability"], expected, atol=1e-6)


@pytest.mark.parametrize("n_trials", [None, 10_000])
def test_a_study_that_runs_until_its_timeout_is_refitted_and_scored(tmp_path: Path, n_trials: int | None) -> None:
    """A run that ends on study.timeout (alone, or before a budget it could never reach) finishes the study as a
    finished budget does: refit, and the test split scored, printed and recorded."""
    csv = _csv(tmp_path / "data.csv", 520)
    doc = _space(csv, "timed", study={"timeout": 2}, training={"max_epochs": 1, "refit": True})
    doc["study"]["n_trials"] = n_trials
    stdout, _ = _run(tmp_path, doc)
    card = _card(tmp_path, "timed")
    assert card["test"]["n"] == round(0.2 * 520) and "refit" in card, sorted(card)
    assert "Test split (104 held-out rows" in stdout
    study = optuna.load_study(study_name="timed", storage=f"sqlite:///{tmp_path / 'studies' / 'timed' / 'study.db'}")
    assert 0 < len(study.trials) < 10_000 and card["trial"] == study.best_trial.number


def test_evaluate_scores_from_any_folder_and_refuses_another_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.json names the data file by its absolute path and sha256: `hpo evaluate` works from another folder,
    and refuses (exit 2, recorded scores kept) a file changed since the study trained."""
    _csv(tmp_path / "data.csv", 520)
    monkeypatch.chdir(tmp_path)
    doc = _space(Path("data.csv"), "where", n_trials=2, training={"max_epochs": 1})
    _run(tmp_path, doc)
    card = _card(tmp_path, "where")
    assert card["data"]["path"] == str(tmp_path / "data.csv") and len(card["data"]["sha256"]) == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = str(tmp_path / "studies")
    again = CliRunner().invoke(main, ["evaluate", "--study", "where", "--root", root, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["test"]["auroc"] == card["test"]["auroc"]

    frame = pd.read_csv(tmp_path / "data.csv")
    rows = card["data"]["test_rows"][:10]
    frame.loc[rows, "y"] = 1 - frame.loc[rows, "y"]
    frame.to_csv(tmp_path / "data.csv", index=False)
    changed = CliRunner().invoke(main, ["evaluate", "--study", "where", "--root", root])
    assert changed.exit_code == 2 and "sha256 differs" in changed.stderr, changed.output
    assert _card(tmp_path, "where")["test"] == card["test"]

    missing = CliRunner().invoke(main, ["evaluate", "--study", "nope", "--root", root])
    assert missing.exit_code == 2 and "no study 'nope' here" in missing.stderr, missing.output
