"""The best trial as the storage records it, checked against the weights in ``best/``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from hpo.config.experiment import load_experiment
from hpo.errors import StudyError
from hpo.search.run import run_study
from hpo.views.best_summary import describe_best
from tests.conftest import tiny_space


def test_describe_best_matches_storage_and_weights(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    run_study(load_experiment(write_space(tiny_space())), root=root)
    summary = describe_best("tiny", root=root)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root / 'tiny' / 'study.db'}")
    assert (summary.trial, summary.value) == (study.best_trial.number, study.best_trial.value)
    assert summary.weights_status == "ok" and summary.states == {"complete": 3}
    with pytest.raises(StudyError, match="no such database file"):
        describe_best("other", root=root)


def test_weights_written_elsewhere_or_missing_are_reported(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    run_study(load_experiment(write_space(tiny_space())), root=root)
    card_path = root / "tiny" / "best" / "model.json"
    card = json.loads(card_path.read_text())
    card["trial"] += 100  # as if another host sharing the storage had promoted a later trial here
    card_path.write_text(json.dumps(card))
    assert describe_best("tiny", root=root).weights_status == "stale"
    shutil.rmtree(root / "tiny" / "best")
    summary = describe_best("tiny", root=root)
    assert (summary.weights_status, summary.weights_dir) == ("missing", None)


def test_a_study_without_a_completed_trial_has_no_best(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    storage = f"sqlite:///{root / 'empty' / 'study.db'}"
    (root / "empty").mkdir(parents=True)
    study = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    with pytest.raises(StudyError, match=r"no completed trial yet \(\{'fail': 1\}\); run `hpo run`"):
        describe_best("empty", root=root)
