"""Target values as written in a CSV (spaces around them, an unquoted YAML ``positive_label``) through ``hpo run``,
``hpo predict`` and ``hpo evaluate``: the labels are the stripped text, and every command agrees on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from hpo.cli import main

SPACE = """\
study: {{name: spaced, n_trials: 2, sampler: {{name: random, seed: 0}}, pruner: none}}
data: {{path: {csv}, target: y, positive_label: yes, test_fraction: 0.25, split_seed: 1}}
training: {{max_epochs: 3, batch_size: 64}}
params: {{lr: 0.01, hidden_size: 8}}
"""


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_spaced_target_values_and_an_unquoted_yes_label_agree_across_commands(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=160)
    spaced = np.where(a + rng.normal(0, 0.5, 160) > 0, " yes", "no ")
    csv = tmp_path / "data.csv"
    pd.DataFrame({"a": a, "b": rng.normal(size=160), "y": spaced}).to_csv(csv, index=False)
    (tmp_path / "space.yaml").write_text(SPACE.format(csv=csv), encoding="utf-8")
    root = ["--root", str(tmp_path / "studies")]
    result = _invoke(["run", str(tmp_path / "space.yaml"), *root])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "studies" / "spaced" / "best" / "model.json").read_text())
    assert card["labels"] == {"negative": "no", "positive": "yes"}

    result = _invoke(["predict", "--study", "spaced", *root, str(csv), "-o", str(tmp_path / "out.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == {"negative": "no", "positive": "yes"}
    assert set(pd.read_csv(tmp_path / "out.csv")["label"]) <= {"no", "yes"}

    result = _invoke(["evaluate", "--study", "spaced", *root, "--json"])
    assert result.exit_code == 0, result.output
    test = json.loads(result.stdout)["test"]
    rows = card["data"]["test_rows"]
    assert test["n"] == len(rows) and test["n_positive"] == int((spaced[rows] == " yes").sum()) > 0
