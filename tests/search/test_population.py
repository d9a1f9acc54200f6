"""`training.population`: trials trained together are still each their own Optuna trial, TensorBoard run and model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.config.experiment import load_experiment
from hpo.data.loading import load_data
from hpo.metrics import compute_metrics
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.search.run import run_study
from hpo.study.artifacts import read_attached_files
from tests.conftest import read_tensorboard_run, tiny_space


def _space(**study: object) -> dict:
    doc = tiny_space(
        study={"name": "pop", "n_trials": 7, **study},
        training={"max_epochs": 4, "batch_size": 64, "population": 4},
    )
    doc["params"] |= {
        "hidden_size": {"type": "int", "low": 8, "high": 48},
        "batch_size": {"type": "categorical", "choices": [32, 64]},
        "preprocessing.numeric": {"type": "categorical", "choices": ["standard", "robust"]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    }
    return doc


@pytest.mark.slow
def test_population_members_are_trials_with_their_own_runs_and_weights(tmp_path: Path, write_space) -> None:
    """7 trials with population 4 (populations of 4 and 3): exactly 7 finished trials, each with its own
    TensorBoard run whose hp_metric is Optuna's value, and every member whose weights were kept reproduces its
    recorded value from those weights loaded into the plain MLP."""
    experiment = load_experiment(write_space(_space()))
    root = tmp_path / "studies"
    reports = []
    result = run_study(experiment, root=root, on_trial_end=reports.append)
    assert result.finished == 7 and len(reports) == 7
    study = optuna.load_study(study_name="pop", storage=f"sqlite:///{root / 'pop' / 'study.db'}")
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 7 and len(study.trials) == 7
    assert sorted(t.user_attrs["population"] for t in trials) == [3, 3, 3, 4, 4, 4, 4]
    paths = StudyPaths(root, "pop")
    data = load_data(experiment.data)
    checked, attached = 0, set()
    for trial in trials:
        scalars, hparams, _ = read_tensorboard_run(paths.tensorboard_dir / paths.trial_version(trial.number))
        assert scalars["hp_metric"][-1][1] == pytest.approx(trial.value, abs=1e-6)
        assert [step for step, _ in scalars["val/auroc"]] == list(range(trial.user_attrs["epochs_trained"]))
        assert hparams["lr"] == pytest.approx(trial.params["lr"])
        files = read_attached_files(trial, paths)
        if trial.state != TrialState.COMPLETE or files is None:
            continue
        card = json.loads(files["model.json"])
        assert card["trial"] == trial.number
        model = MLP(**card["model"]["kwargs"])
        model.load_state_dict(torch.load(io.BytesIO(files["model.pt"]), weights_only=True))
        model.eval()
        inputs = data.prepared(card["params"]["preprocessing.numeric"])
        with torch.no_grad():
            logits = model(torch.from_numpy(inputs.x_val))
        value = float(compute_metrics(logits, torch.from_numpy(inputs.y_val))["val/auroc"])
        assert value == pytest.approx(trial.value, abs=1e-6), trial.number
        checked += 1
        attached.add(trial.number)
    # Files are built for a member that beats the best of the earlier populations and that no sibling beats (a
    # sibling better than it is told complete with it: it can never be the best).
    expected, best_before = set(), float("-inf")
    for numbers in (range(0, 4), range(4, 7)):
        values = {t.number: t.value for t in trials if t.number in numbers and t.state == TrialState.COMPLETE}
        expected |= {n for n, v in values.items() if v > best_before and v >= max(values.values())}
        best_before = max(best_before, *values.values())
    assert attached == expected and checked >= 1
    best = json.loads((paths.best / "model.json").read_text())
    assert best["trial"] == study.best_trial.number


@pytest.mark.slow
def test_population_prunes_members_one_by_one(tmp_path: Path, write_space) -> None:
    """With a pruner, members of one population are pruned on their own (the others go on to the last epoch), and a
    pruned member's value is its last report, as for a trial trained alone."""
    doc = _space(n_trials=8, pruner={"name": "percentile", "percentile": 60.0, "n_startup_trials": 2})
    doc["params"]["lr"] = {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}
    doc["training"]["population"] = 4
    root = tmp_path / "studies"
    run_study(load_experiment(write_space(doc)), root=root)
    study = optuna.load_study(study_name="pop", storage=f"sqlite:///{root / 'pop' / 'study.db'}")
    second = [t for t in study.trials if t.number >= 4]
    pruned = [t for t in second if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state) for t in second]
    for trial in pruned:
        assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]
        assert "pruned by the percentile pruner" in trial.user_attrs["pruned_reason"]
        assert trial.user_attrs["epochs_trained"] < 4
    assert len(study.trials) == 8


@pytest.mark.slow
def test_a_member_told_after_a_pruned_sibling_is_published_as_the_best(tmp_path: Path, write_space) -> None:
    """Population 2 over four queued trials: the second population's first member diverges (pruned) and the second
    is the best trial. The best trial known in the process must follow the storage's (the note of a told trial was
    made after a read that already counted it, and the next population took that stale note for the best): best/,
    the reports and the run's result name the study's best trial."""
    doc = tiny_space(
        study={"name": "pop", "n_trials": 4, "sampler": {"name": "random", "seed": 1}},
        training={"max_epochs": 5, "batch_size": 64, "population": 2},
    )
    doc["study"]["enqueue"] = [{"lr": 1e-5}, {"lr": 5e-4}, {"lr": 1e6}, {"lr": 1e-2}]
    doc["params"] |= {"lr": {"type": "float", "low": 1e-5, "high": 1e6, "log": True}, "optimizer": "sgd"}
    doc["params"].pop("momentum")
    root = tmp_path / "studies"
    reports: list = []
    result = run_study(load_experiment(write_space(doc)), root=root, on_trial_end=reports.append)
    study = optuna.load_study(study_name="pop", storage=f"sqlite:///{root / 'pop' / 'study.db'}")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE], states
    best = study.best_trial
    assert best.number == 3, [t.value for t in study.trials]  # the case this test is about
    assert result.best_trial == best.number and result.best_value == best.value
    # the second population's members are reported after both were told: trial 3 is the best for both reports
    assert [(r.number, r.best_trial) for r in reports[2:]] == [(2, 3), (3, 3)]
    assert [r.number for r in reports if r.promoted][-1] == 3
    assert json.loads((StudyPaths(root, "pop").best / "model.json").read_text())["trial"] == 3
