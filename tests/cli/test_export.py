"""``hpo export`` end to end: a study trained on a raw CSV, exported, run by onnxruntime alone, equal to hpo predict."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from hpo.cli import main

pytest.importorskip("onnxruntime")

#: Runs in a fresh interpreter that may import onnxruntime, numpy and pandas only: what a deployment has.
ONNX_ONLY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, onnxruntime, pandas as pd

    model, rows, out = sys.argv[1:]
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    frame = pd.read_csv(rows, dtype=str, keep_default_na=False)  # every cell as its text, blanks as ""
    feeds = {}
    for node in session.get_inputs():
        if node.type == "tensor(double)":
            values = pd.to_numeric(frame[node.name].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        else:
            values = frame[node.name].str.strip().to_numpy(dtype=object)
        feeds[node.name] = values.reshape(-1, 1)
    probability, logit, positive = session.run(None, feeds)
    meta = session.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["hpo.labels"])
    json.dump(
        {
            "probability": probability.astype(float).tolist(),
            "label": np.where(positive, labels["positive"], labels["negative"]).tolist(),
            "threshold": float(meta["hpo.threshold"]),
            "inputs": [[node.name, node.type] for node in session.get_inputs()],
            "leaked": sorted(m for m in ("torch", "hpo", "lightning", "optuna") if m in sys.modules),
        },
        open(out, "w"),
    )
    """
)


def messy_frame(rows: int, seed: int) -> pd.DataFrame:
    """A numeric column with blanks, text with blanks, booleans, an integer code with blanks, a blank-free number."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows).round(0)
    city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], rows)
    member = rng.random(rows) < 0.4
    grade = rng.integers(1, 5, rows).astype(float)
    income = rng.lognormal(10, 0.5, rows).round(2)
    score = 0.08 * (age - 40) + 1.5 * (city == "Paris") - 1.0 * member + 0.5 * (grade == 3)
    frame = pd.DataFrame(
        {
            "customer": [f"C{seed}-{i:04d}" for i in range(rows)],
            "age": age,
            "city": city.astype(object),
            "member": member,
            "grade": grade,
            "income": income,
            "bought": np.where(score + rng.normal(0, 0.7, rows) > 0.3, "yes", "no"),
        }
    )
    frame.loc[rng.choice(rows, rows // 10, replace=False), "age"] = np.nan
    frame.loc[rng.choice(rows, rows // 10, replace=False), "city"] = ""
    frame.loc[rng.choice(rows, rows // 10, replace=False), "grade"] = np.nan
    return frame


def _train(tmp_path: Path, scaling: str, embedding: str = "none") -> Path:
    csv = tmp_path / "train.csv"
    messy_frame(240, seed=0).to_csv(csv, index=False)
    space = {
        "study": {"name": "exp", "n_trials": 1, "sampler": {"name": "random", "seed": 0}, "pruner": "none"},
        "data": {"path": str(csv), "target": "bought", "id_columns": ["customer"], "categorical": ["grade"]},
        "training": {"max_epochs": 3, "batch_size": 64},
        "inference": {"threshold": "max_f1", "temperature_scaling": True},
        "params": {
            "lr": 0.02,
            "hidden_size": 16,
            "activation": "gelu",
            "preprocessing.numeric": scaling,
            "model.embedding": embedding,
        },
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    root = tmp_path / "studies"
    result = CliRunner().invoke(main, ["run", str(path), "--root", str(root)])
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scaling", "embedding"), [("standard", "none"), ("robust", "none"), ("quantile", "none"), ("robust", "periodic")]
)
def test_export_runs_in_onnxruntime_alone_and_matches_hpo_predict(tmp_path: Path, scaling: str, embedding: str) -> None:
    root = _train(tmp_path, scaling, embedding)
    card = json.loads((root / "exp" / "best" / "model.json").read_text())
    assert card["params"]["preprocessing.numeric"] == scaling
    assert card["model"]["kwargs"].get("embedding", "none") == embedding
    encodings = {c["name"]: (c["kind"], c.get("encoding")) for c in card["preprocessing"]["columns"]}
    assert encodings["city"] == ("categorical", "one_hot") and encodings["member"] == ("categorical", "binary")
    assert encodings["grade"] == ("categorical", "one_hot") and encodings["age"][0] == "numeric"

    model = tmp_path / "out" / "model.onnx"
    model.parent.mkdir()
    result = CliRunner().invoke(
        main, ["export", "--study", "exp", "--root", str(root), "--format", "onnx", "-o", str(model), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["path"] == str(model) and summary["scaling"] == scaling and model.stat().st_size > 0

    # New rows: a city and a grade never seen, blanks of every spelling, infinities, an extra column.
    new = messy_frame(50, seed=1).drop(columns="bought").astype(object).assign(note="x")
    new.loc[0, ["city", "grade", "age"]] = ["Marseille", 9.0, "inf"]
    new.loc[1, ["city", "age", "grade"]] = ["NA", " ", "NaN"]
    new.loc[2, ["age", "income"]] = [1e308, "-inf"]
    rows = tmp_path / "new.csv"
    new.to_csv(rows, index=False)
    result = CliRunner().invoke(
        main, ["predict", "--study", "exp", "--root", str(root), str(rows), "-o", str(tmp_path / "p.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["unseen_levels"]["city"] >= 1
    predicted = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)

    script = tmp_path / "run_onnx.py"
    script.write_text(ONNX_ONLY_SCRIPT, encoding="utf-8")
    out = tmp_path / "onnx.json"
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(model), str(rows), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    onnx = json.loads(out.read_text())
    assert onnx["leaked"] == []
    assert [name for name, _ in onnx["inputs"]] == card["features"]
    assert dict(onnx["inputs"])["age"] == "tensor(double)" and dict(onnx["inputs"])["city"] == "tensor(string)"
    np.testing.assert_allclose(onnx["probability"], predicted["probability"], atol=1e-5)
    assert onnx["threshold"] == pytest.approx(card["threshold"]["value"])
    decided = np.abs(predicted["probability"].to_numpy() - onnx["threshold"]) > 1e-5
    assert (np.asarray(onnx["label"]) == predicted["label"].to_numpy())[decided].all()


def test_bad_options_exit_2_with_a_message(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    for args, message in [
        (["--study", "a", "--model", str(tmp_path)], "give one of them"),
        (["--model", str(tmp_path), "--trial", "3"], "--trial picks a trial"),
        (["--study", "nothing", "--root", str(tmp_path)], "no best weights yet for study 'nothing'"),
    ]:
        result = CliRunner().invoke(main, ["export", *args, "-o", str(out)])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert not out.exists()
