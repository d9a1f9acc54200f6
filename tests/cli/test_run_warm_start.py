"""`hpo run --from`: what was queued is said once, before the first trial; partial or ignored requests say so; the
queue never outgrows the budget; `--json` shows the test scores as `hpo best --json` and `hpo evaluate --json` do."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from tests.conftest import run_hpo, tiny_space

pytestmark = pytest.mark.slow


def _old_study(root: Path) -> None:
    """A study ``old`` of four trials (made with Optuna alone); each has twelve parameters the new space lacks."""
    (root / "old").mkdir(parents=True)
    study = optuna.create_study(study_name="old", storage=f"sqlite:///{root}/old/study.db", direction="maximize")
    extra = {f"x{i}": 0.5 for i in range(12)}
    dists = {
        "lr": FloatDistribution(1e-3, 1e-1, log=True),
        "optimizer": CategoricalDistribution(["adam", "sgd"]),
        **{name: FloatDistribution(0.0, 1.0) for name in extra},
    }
    for lr, optimizer, value in [(0.002, "adam", 0.7), (0.05, "adam", 0.9), (0.08, "sgd", 0.8), (0.004, "sgd", 0.6)]:
        params = {"lr": lr, "optimizer": optimizer, **extra}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))


def _states(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT state FROM trials ORDER BY number")]


def test_from_storage_without_from_is_refused(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(tiny_space()), encoding="utf-8")
    run = run_hpo(["run", "space.yaml", "--from-storage", "sqlite:///elsewhere.db"], cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == ("error: --from-storage names where the --from study is; give --from STUDY as well"), (
        run.stderr
    )
    assert not (tmp_path / "studies").exists()


def test_the_warm_start_is_said_once_before_the_first_trial_and_fits_the_budget(tmp_path: Path) -> None:
    root = tmp_path / "studies"
    _old_study(root)
    doc = tiny_space(study={"name": "new", "n_trials": 2}, training={"max_epochs": 1, "batch_size": 128})
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    run = run_hpo(["run", "space.yaml", "--from", "old:50", "--threads", "1"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    queued = [i for i, line in enumerate(lines) if line.startswith("Queued ")]
    trials = [i for i, line in enumerate(lines) if line.startswith("trial ")]
    assert len(queued) == 1 and len(trials) == 2 and queued[0] < trials[0], run.stdout
    assert lines[queued[0]] == "Queued 2 configuration(s) from --from old as the first trials."
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 3 and all(lines.index(note) < trials[0] for note in notes), run.stdout
    took, left_out, over = notes
    assert took == "note: --from old:50: took 4 of the 50 asked: old has only 4 feasible completed trial(s)"
    # lr=0.05 and lr=0.08 are outside [0.001, 0.03], x0..x11 are not in the space: 14 values, 10 named
    assert left_out.startswith("note: left out of them: lr=0.05 (outside [0.001, 0.03]), x0=0.5 (not in this")
    assert left_out.endswith(", and 4 more") and left_out.count("=") == 10, left_out
    assert over.startswith("note: 2 more configuration(s) not queued: queued trials count towards n_trials (2)")
    assert _states(root / "new" / "study.db") == ["COMPLETE", "COMPLETE"]  # nothing left WAITING

    # A study that exists is resumed: --from is ignored, and says so (once).
    again = run_hpo(["run", "space.yaml", "--from", "old", "--n-trials", "3", "--threads", "1"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    ignored = [line for line in again.stdout.splitlines() if "--from old is ignored" in line]
    assert ignored == [
        "note: --from old is ignored: study 'new' already exists (a study is warm-started once, "
        "when it is created); give a new --study to start one from it"
    ], again.stdout
    assert "Queued " not in again.stdout
    assert _states(root / "new" / "study.db") == ["COMPLETE"] * 3
    finished = run_hpo(["run", "space.yaml", "--from", "old", "--n-trials", "3"], cwd=tmp_path)
    assert finished.returncode == 0 and finished.stdout.count("--from old is ignored") == 1, finished.stdout


def test_json_has_the_test_scores_where_best_and_evaluate_have_them(tmp_path: Path) -> None:
    doc = tiny_space(
        study={"name": "scored", "n_trials": 2},
        data={"source": "breast_cancer", "split_seed": 42, "test_fraction": 0.2},
        training={"max_epochs": 1, "batch_size": 128},
        inference={"ensemble": {"top_k": 2}},
    )
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    run = run_hpo(["run", "space.yaml", "--json", "--threads", "1"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    best = json.loads(run_hpo(["best", "--study", "scored", "--json"], cwd=tmp_path).stdout)
    evaluate = json.loads(run_hpo(["evaluate", "--study", "scored", "--json"], cwd=tmp_path).stdout)
    assert printed["test"]["split"] == "test" and printed["ensemble_test"]["split"] == "test"
    assert printed["test"] == best["test"] and printed["ensemble_test"] == best["ensemble_test"]
    assert set(printed["test"]) == set(evaluate["test"]) and set(printed["ensemble_test"]) == set(
        evaluate["ensemble_test"]
    )
    assert len(printed["ensemble"]) == 2
    assert printed["refitted_from"] is None and printed["finished"] == 2  # the rest of the result is as it was
