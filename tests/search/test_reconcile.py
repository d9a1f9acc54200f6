"""best/ is never left behind the storage: a run repairs it (from the artifact store, else by training the best
trial's configuration again), and load_best / hpo predict refuse a stale best/ unless told to accept it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

import hpo
from hpo.cli import main
from hpo.errors import WeightsError
from tests.conftest import tiny_space

pytestmark = pytest.mark.slow


def _card(best: Path) -> dict:
    return json.loads((best / "model.json").read_text())


def test_a_stale_best_is_refused_then_repaired_by_the_next_run(tmp_path: Path) -> None:
    # Trial 0 learns almost nothing (queued; n_trials 1 queues no more), trial 1 learns (the seeded sampler's draw,
    # checked below).
    doc = tiny_space(
        study={
            "n_trials": 1,
            "metric": "val/loss",
            "enqueue": [{"lr": 1e-5}],
            "sampler": {"name": "tpe", "seed": 3},  # draws lr 0.05 for trial 1
        },
        training={"max_epochs": 4},
        params={"lr": {"type": "categorical", "choices": [1e-5, 0.05]}, "optimizer": "adam", "momentum": 0.0},
    )
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(doc), encoding="utf-8")
    root = tmp_path / "studies"
    run = ["run", str(space), "--root", str(root)]
    assert CliRunner().invoke(main, run).exit_code == 0
    best = root / "tiny" / "best"
    shutil.copytree(best, tmp_path / "best_of_trial_0")
    assert CliRunner().invoke(main, [*run, "--n-trials", "2"]).exit_code == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root / 'tiny' / 'study.db'}")
    assert [t.params["lr"] for t in study.trials] == [1e-5, 0.05]
    assert _card(best)["trial"] == 1
    good_weights = hashlib.sha256((best / "model.pt").read_bytes()).hexdigest()

    def make_stale() -> None:
        # What a kill between Optuna's tell of trial 1 and its promotion leaves: best/ still holds trial 0.
        shutil.rmtree(best)
        shutil.copytree(tmp_path / "best_of_trial_0", best)

    make_stale()
    with pytest.raises(WeightsError, match="holds trial 0, but the study's storage says its best trial is 1"):
        hpo.load_best("tiny", root=root)
    assert hpo.load_best("tiny", root=root, allow_stale=True).card["trial"] == 0
    scored = CliRunner().invoke(
        main,
        ["predict", "--study", "tiny", "--root", str(root), str(tmp_path / "x.csv"), "-o", str(tmp_path / "o.csv")],
    )
    assert scored.exit_code == 2 and "--allow-stale" in scored.stderr
    shown = CliRunner().invoke(main, ["best", "--study", "tiny", "--root", str(root)])
    assert "rerun the same `hpo run` command to repair best/" in shown.stdout

    # The finished study's rerun repairs it from the artifact store (trial 1's files were attached to it).
    repaired = CliRunner().invoke(main, [*run, "--n-trials", "2"])
    assert repaired.exit_code == 0, repaired.output
    assert "restored trial 1 from its files in artifacts/" in repaired.stderr
    assert _card(best)["trial"] == 1
    assert hashlib.sha256((best / "model.pt").read_bytes()).hexdigest() == good_weights
    assert hpo.load_best("tiny", root=root).card["trial"] == 1

    # Without the artifact store, the best trial's configuration is trained again with its seed.
    make_stale()
    shutil.rmtree(root / "tiny" / "artifacts")
    again = CliRunner().invoke(main, [*run, "--n-trials", "2"])
    assert again.exit_code == 0, again.output
    assert "restored trial 1 from training its configuration again" in again.stderr
    card = _card(best)
    assert card["trial"] == 1 and card["metrics"]["val/loss"] == pytest.approx(card["value"], abs=1e-6)
    assert not [p for p in (root / "tiny").iterdir() if p.name.startswith(".best-")]
