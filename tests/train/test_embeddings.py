"""Periodic numeric embeddings in a trial: which inputs are embedded, and a saved model that loads back every way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

import hpo
from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.data.loading import load_data
from hpo.data.preprocessing import Preprocessor, fit_preprocessor, infer_columns, read_csv_kwargs
from hpo.model import MLP, EmbeddedInputs
from hpo.paths import StudyPaths
from hpo.train.objective import Objective, TrainedModel


def mixed_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers (one with blanks, so it has a ``:missing`` input), text with three levels and a boolean; the label
    depends on a periodic function of ``x`` that embeddings can pick up."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    size = rng.gamma(2.0, 10.0, rows)
    city = rng.choice(["Paris", "Lyon", "Nice"], rows)
    member = rng.random(rows) < 0.5
    score = np.sin(3 * x) + 0.03 * (size - 20) + 0.8 * (city == "Paris") - 0.5 * member
    label = np.where(score + rng.normal(0, 0.5, rows) > 0.2, "yes", "no")
    frame = pd.DataFrame({"x": x, "city": city, "size": size, "member": member, "label": label})
    frame.loc[rng.choice(rows, 20, replace=False), "size"] = np.nan
    return frame


def test_scaled_numeric_outputs_are_the_numeric_values_only() -> None:
    frame = mixed_frame()
    specs = infer_columns(frame, features=["x", "city", "size", "member"], where="frame")
    for scaling in ("standard", "robust", "quantile"):
        pre = fit_preprocessor(frame, specs, scaling=scaling, where="frame")
        names = pre.output_names
        assert {"x", "size", "size:missing", "member=true"} <= set(names) and len(names) > 5
        assert [names[i] for i in pre.scaled_numeric_outputs] == ["x", "size"]
        # the same positions after a JSON round trip (what a saved model's kwargs refer to)
        again = Preprocessor.from_json(pre.to_json(), "model.json")
        assert again.scaled_numeric_outputs == pre.scaled_numeric_outputs


def _space(csv: Path, name: str, **params: object) -> dict:
    return {
        "study": {"name": name, "n_trials": 2, "sampler": {"name": "random", "seed": 0}, "pruner": "none"},
        "data": {"path": str(csv), "target": "label", "split_seed": 1, "test_fraction": 0},
        "training": {"max_epochs": 4, "batch_size": 32},
        "params": {
            "lr": {"type": "float", "low": 3e-3, "high": 1e-2, "log": True},
            "hidden_size": 16,
            "n_layers": 1,
            "model.embedding": "periodic",
            "model.embedding_dim": 4,
            "model.n_frequencies": 3,
            **params,
        },
    }


def test_a_periodic_trial_embeds_the_scaled_numeric_inputs(tmp_path: Path) -> None:
    csv = tmp_path / "mixed.csv"
    mixed_frame().to_csv(csv, index=False)
    path = tmp_path / "space.yaml"
    scalings = {"type": "categorical", "choices": ["standard", "quantile"]}
    doc = _space(csv, "mixed", **{"model.frequency_sigma": 0.3, "preprocessing.numeric": scalings})
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    exp = load_experiment(path)
    data = load_data(exp.data)
    kept: list[TrainedModel] = []
    objective = Objective(exp, data, StudyPaths(tmp_path / "studies", "mixed"), lambda t, m, siblings: kept.append(m))
    value = objective(optuna.trial.FixedTrial({"lr": 0.01, "preprocessing.numeric": "quantile"}, number=0))
    trained = kept[-1]
    names = data.prepared().preprocessor.output_names
    kwargs = trained.model_kwargs
    assert kwargs["embedding"] == "periodic" and kwargs["n_features"] == len(names)
    assert [names[i] for i in kwargs["embedded_inputs"]] == ["x", "size"]
    assert (kwargs["embedding_dim"], kwargs["n_frequencies"], kwargs["frequency_sigma"]) == (4, 3, 0.3)
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON, as model.json stores it
    model = MLP(**kwargs)
    model.load_state_dict(trained.state_dict)
    assert isinstance(model.net[0], EmbeddedInputs)
    model.eval()
    prepared = data.prepared("quantile")
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(prepared.x_val))).numpy()
    assert roc_auc_score(data.y_val, p) == pytest.approx(value, abs=1e-6)


def test_without_the_embedding_parameter_a_trial_builds_the_plain_mlp(tmp_path: Path) -> None:
    csv = tmp_path / "mixed.csv"
    mixed_frame().to_csv(csv, index=False)
    doc = _space(csv, "plain")
    for key in ("model.embedding", "model.embedding_dim", "model.n_frequencies"):
        del doc["params"][key]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    exp = load_experiment(path)
    kept: list[TrainedModel] = []
    objective = Objective(
        exp, load_data(exp.data), StudyPaths(tmp_path / "s", "plain"), lambda t, m, siblings: kept.append(m)
    )
    objective(optuna.trial.FixedTrial({"lr": 0.01}, number=0))
    assert set(kept[-1].model_kwargs) == {"n_features", "n_layers", "hidden_size", "dropout", "activation"}


@pytest.mark.slow
def test_an_embedding_model_loads_back_with_plain_torch_predict_and_load_best(tmp_path: Path) -> None:
    csv = tmp_path / "mixed.csv"
    mixed_frame().to_csv(csv, index=False)
    space = _space(csv, "embedded", **{"preprocessing.numeric": {"type": "categorical", "choices": ["robust"]}})
    path = tmp_path / "embedded.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    root = tmp_path / "studies"
    result = CliRunner().invoke(main, ["run", str(path), "--root", str(root)])
    assert result.exit_code == 0, result.output
    best = root / "embedded" / "best"
    card = json.loads((best / "model.json").read_text())
    assert card["model"]["kwargs"]["embedding"] == "periodic"

    # the plain PyTorch recipe of the README
    model = MLP(**card["model"]["kwargs"])
    model.load_state_dict(torch.load(best / "model.pt"))
    model.eval()
    new = mixed_frame(50, seed=1).drop(columns="label")
    new.loc[0, "size"] = np.nan
    new_csv = tmp_path / "new.csv"
    new.to_csv(new_csv, index=False)
    raw = pd.read_csv(new_csv, **read_csv_kwargs())
    x, _ = Preprocessor.from_json(card["preprocessing"], "model.json").transform(raw)
    with torch.no_grad():
        plain = torch.sigmoid(model(torch.from_numpy(x)) / card.get("temperature", 1.0)).numpy()

    out = tmp_path / "scored.csv"
    result = CliRunner().invoke(main, ["predict", "--model", str(best), str(new_csv), "-o", str(out)])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)["probability"].to_numpy()
    loaded = hpo.load_best("embedded", root=root).predict_proba(raw)
    np.testing.assert_allclose(predicted, plain, atol=1e-6)
    np.testing.assert_allclose(loaded, plain, atol=1e-6)

    # the validation AUROC recorded in model.json comes back from the raw training rows
    frame = pd.read_csv(csv, **read_csv_kwargs())
    rows = card["data"]["validation_rows"]
    probabilities = hpo.load_best("embedded", root=root).predict_proba(frame)
    y = frame["label"].iloc[rows] == "yes"
    assert roc_auc_score(y, probabilities[rows]) == pytest.approx(card["metrics"]["val/auroc"], abs=1e-6)
