from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.config import load_experiment
from hpo.errors import DataError, StudyError
from hpo.study import describe_best, run_study
from hpo.weights import load_model
from tests.conftest import read_tensorboard_run, tiny_space


def _storage(root: Path, name: str) -> str:
    return f"sqlite:///{root / name / 'study.db'}"


def test_run_creates_sqlite_study_tensorboard_runs_and_best_weights(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    exp = load_experiment(write_space(tiny_space(study={"n_trials": 4})))
    reports = []
    result = run_study(exp, root=root, on_trial_end=reports.append)
    assert result.finished == 4 and result.ran == 4
    assert [r.finished for r in reports] == [1, 2, 3, 4]

    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))  # a real SQLite file
    assert len(study.trials) == 4
    best = study.best_trial
    assert result.best_trial == best.number and result.best_value == best.value

    runs = sorted(p.name for p in (root / "tiny" / "tb").iterdir())
    assert runs == [f"trial_{n:04d}" for n in range(4)]
    for trial in study.trials:
        scalars, hparams, _ = read_tensorboard_run(root / "tiny" / "tb" / f"trial_{trial.number:04d}")
        assert scalars["hp_metric"][-1][1] == trial.value
        assert hparams["lr"] == pytest.approx(trial.params["lr"])

    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert card["trial"] == best.number and card["value"] == best.value
    assert card["metric"] == "val/auroc" and card["labels"] == {"negative": "benign", "positive": "malignant"}
    assert len(card["features"]) == 30 and len(card["standardization"]["mean"]) == 30
    assert card["model"]["class"] == "hpo.model.MLP"
    for key in ("torch", "optuna", "pytorch-lightning", "python"):
        assert key in card["versions"]
    state = torch.load(root / "tiny" / "best" / "model.pt")  # weights_only=True by default
    assert set(state) == set(load_model(root / "tiny" / "best").model.state_dict())


def test_rerun_completes_the_budget_instead_of_adding_to_it(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    short = load_experiment(write_space(tiny_space(study={"n_trials": 2})))
    assert run_study(short, root=root).finished == 2
    full = short.with_overrides(n_trials=5)
    result = run_study(full, root=root)
    assert (result.finished, result.ran) == (5, 3)
    again = run_study(full, root=root)
    assert (again.finished, again.ran) == (5, 0)
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    assert len(study.trials) == 5
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]


def test_should_stop_ends_after_the_running_trial(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    exp = load_experiment(write_space(tiny_space(study={"n_trials": 5})))
    reports: list[object] = []
    result = run_study(exp, root=root, on_trial_end=reports.append, should_stop=lambda: len(reports) >= 1)
    assert result.stopped_early and result.finished == 1
    assert run_study(exp, root=root).finished == 5


def test_pruned_trials_never_touch_best(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    doc = tiny_space(
        study={
            "n_trials": 6,
            "pruner": {"name": "percentile", "percentile": 90.0, "n_startup_trials": 1, "n_warmup_steps": 0},
        },
        training={"max_epochs": 4},
    )
    exp = load_experiment(write_space(doc))
    promoted_by_state: dict[str, list[bool]] = {}
    run_study(exp, root=root, on_trial_end=lambda r: promoted_by_state.setdefault(r.state, []).append(r.promoted))
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    assert not any(promoted_by_state.get("pruned", []))
    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert study.trials[card["trial"]].state == TrialState.COMPLETE
    assert card["trial"] == study.best_trial.number


def test_describe_best_matches_storage_and_weights(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    run_study(load_experiment(write_space(tiny_space())), root=root)
    summary = describe_best("tiny", root=root)
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    assert (summary.trial, summary.value) == (study.best_trial.number, study.best_trial.value)
    assert summary.weights_status == "ok" and summary.states == {"complete": 3}
    with pytest.raises(StudyError, match="no such database file"):
        describe_best("other", root=root)


def test_bad_data_writes_nothing(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    doc = tiny_space(data={"path": str(tmp_path / "missing.csv"), "target": "y"})
    doc["data"].pop("source")
    with pytest.raises(DataError):
        run_study(load_experiment(write_space(doc)), root=root)
    assert not root.exists()


def test_resuming_with_another_direction_is_refused(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    exp = load_experiment(write_space(tiny_space(study={"n_trials": 1})))
    run_study(exp, root=root)
    flipped = load_experiment(write_space(tiny_space(study={"n_trials": 2, "metric": "val/loss"})))
    with pytest.raises(StudyError, match="already exists and is set to maximize"):
        run_study(flipped, root=root)


def test_unreachable_storage_hides_the_password(write_space, tmp_path: Path) -> None:
    exp = load_experiment(write_space(tiny_space()))
    with pytest.raises(StudyError) as info:
        run_study(exp, root=tmp_path / "studies", storage="postgresql+psycopg://bob:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert not (tmp_path / "studies").exists()
