from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import optuna
import pytest
import torch
from lightning_fabric.utilities import registry

from hpo.config.experiment import TrainingSettings, load_experiment
from hpo.data.loading import load_data
from hpo.metrics import METRICS, hp_name
from hpo.paths import StudyPaths
from hpo.train import objective as objective_module
from hpo.train.objective import Objective, TrainedModel, build_trainer
from tests.conftest import read_tensorboard_run, tiny_space


@pytest.fixture
def objective(write_space, tmp_path: Path):
    def make(**overrides) -> Objective:
        exp = load_experiment(write_space(tiny_space(**overrides)))
        completed: list[TrainedModel] = []
        objective = Objective(
            exp,
            load_data(exp.data),
            StudyPaths(tmp_path / "studies", exp.study.name),
            on_complete=lambda trial, trained, siblings: completed.append(trained),
        )
        _COMPLETED[id(objective)] = completed
        return objective

    return make


_COMPLETED: dict[int, list[TrainedModel]] = {}


def last_trained(objective: Objective) -> TrainedModel | None:
    """The weights the objective handed to ``on_complete`` for its last completed trial (None: none completed)."""
    completed = _COMPLETED[id(objective)]
    return completed[-1] if completed else None


def test_fixed_trial_trains_and_logs_to_tensorboard(objective) -> None:
    obj = objective()
    params = {"lr": 0.01, "n_layers": 1, "optimizer": "sgd", "momentum": 0.8}
    value = obj(optuna.trial.FixedTrial(params, number=7))
    trained = last_trained(obj)
    assert trained is not None and trained.trial_number == 7
    assert 0.5 < value <= 1.0 and value == trained.metrics["val/auroc"]
    assert trained.model_kwargs == {
        "n_features": 30,
        "n_layers": 1,
        "hidden_size": 16,
        "dropout": 0.0,
        "activation": "relu",
    }
    run = obj.paths.tensorboard_dir / "trial_0007"
    scalars, hparams, declared = read_tensorboard_run(run)
    assert hparams["lr"] == pytest.approx(0.01) and hparams["optimizer"] == "sgd" and hparams["momentum"] == 0.8
    assert set(declared) == {"hp_metric", *(hp_name(m) for m in METRICS)}
    assert [step for step, _ in scalars["hp/auroc"]] == [0, 1, 2]  # epochs 0..2, no placeholder point at step 0
    # the value returned to Optuna (float64), as TensorBoard's float32 scalars hold it
    assert scalars["hp_metric"][-1][1] == float(torch.tensor(value, dtype=torch.float32))
    per_epoch = [v for s, v in scalars["val/auroc"]]
    assert len(per_epoch) == 3 and max(per_epoch) == float(torch.tensor(value, dtype=torch.float32))
    assert "train/loss" in scalars


def test_non_finite_loss_prunes_with_reason(objective) -> None:
    obj = objective(
        training={"max_epochs": 3, "batch_size": 16},
        params={"lr": 1e12, "optimizer": "sgd", "momentum": 0.9, "n_layers": 2},
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(obj, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    reason = trial.user_attrs["pruned_reason"]
    assert "training loss became NaN" in reason or "training loss became infinite" in reason
    assert last_trained(obj) is None


def test_pruning_callback_stops_training_early(objective) -> None:
    obj = objective(training={"max_epochs": 5})
    # A threshold no AUROC can reach: the pruner prunes at the first report, so training stops after epoch 0.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    study.optimize(obj, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values.keys() == {0}
    assert trial.user_attrs["epochs_trained"] == 1
    assert "pruned by" in trial.user_attrs["pruned_reason"]


def test_reports_every_epoch_and_returns_best_epoch(objective) -> None:
    obj = objective(training={"max_epochs": 4})
    study = optuna.create_study(direction="maximize")
    study.optimize(obj, n_trials=1)
    trial = study.trials[0]
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3]
    assert trial.value == max(trial.intermediate_values.values())
    assert not math.isnan(trial.value)


def test_multi_objective_trial_returns_every_objective_and_records_constraints(objective) -> None:
    obj = objective(
        study={
            "objectives": ["val/auroc", {"metric": "model/params"}, {"metric": "model/latency_ms"}],
            "constraints": ["val/recall >= 0.5", "model/params <= 100"],
            "pruner": {"name": "none"},
        }
    )
    trial = optuna.trial.FixedTrial({"lr": 0.01, "n_layers": 1, "optimizer": "adam"}, number=3)
    values = obj(trial)
    trained = last_trained(obj)
    assert trained is not None and isinstance(values, list) and len(values) == 3
    auroc, params, latency = values
    assert auroc == trained.value == trained.metrics["val/auroc"]  # the best epoch by the first objective
    assert params == 30 * 16 + 16 + 16 + 1 and latency > 0
    assert trained.values == (auroc, params, latency)
    recall = trained.metrics["val/recall"]
    assert trial.constraints == {"val/recall >= 0.5": pytest.approx(0.5 - recall), "model/params <= 100": params - 100}
    assert trained.constraints == trial.constraints and not trained.feasible

    scalars, _, declared = read_tensorboard_run(obj.paths.tensorboard_dir / "trial_0003")
    assert {"hp/params", "hp/latency_ms", "hp_metric", "hp/recall", "hp/precision"} <= set(declared)
    last = max(step for step, _ in scalars["hp_metric"])  # the step after the last epoch
    assert scalars["hp/params"][-1] == (last, params) and scalars["hp/auroc"][-1] == (last, pytest.approx(auroc))
    assert scalars["hp/latency_ms"][-1][1] == pytest.approx(latency)


def test_a_multi_objective_study_reports_no_epochs_to_optuna(objective) -> None:
    obj = objective(study={"objectives": ["val/loss", "model/params"], "pruner": {"name": "none"}})
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.optimize(obj, n_trials=1)  # Trial.report would raise for a multi-objective study
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.intermediate_values == {}
    assert trial.values == [trial.user_attrs["metrics"]["val/loss"], trial.user_attrs["metrics"]["model/params"]]


def test_a_single_objective_study_logs_model_metrics_only_when_it_uses_them(objective) -> None:
    obj = objective(study={"constraints": ["model/params <= 10000"]})
    value = obj(optuna.trial.FixedTrial({"lr": 0.01, "n_layers": 1, "optimizer": "adam"}, number=1))
    assert isinstance(value, float) and last_trained(obj) is not None and last_trained(obj).feasible
    scalars, _, declared = read_tensorboard_run(obj.paths.tensorboard_dir / "trial_0001")
    assert "hp/params" in declared and "hp/latency_ms" not in declared
    assert [step for step, _ in scalars["hp/auroc"]] == [0, 1, 2]  # unchanged: no extra point
    assert scalars["hp/params"][-1] == (3, 30 * 16 + 16 + 16 + 1)


def test_lightning_callback_plugins_are_looked_up_once_and_called_for_every_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plug-in package, as pip would install it: a module and its entry point in a dist-info folder.
    (tmp_path / "hpo_plugin_probe.py").write_text(
        "import pytorch_lightning as pl\n\nclass Probe(pl.Callback):\n    pass\n\ndef make():\n    return [Probe()]\n"
    )
    info = tmp_path / "hpo_plugin_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hpo-plugin-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytorch_lightning.callbacks_factory]\nprobe = hpo_plugin_probe:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "entry_points", importlib.metadata.entry_points)  # as Lightning has it
    objective_module._entry_points.cache_clear()

    lookups = []
    real = importlib.metadata.entry_points

    def counted(**selection: str) -> importlib.metadata.EntryPoints:
        lookups.append(selection)
        return real(**selection)

    objective_module._look_up_callback_factories_once()
    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    trainers = [build_trainer(TrainingSettings(), False, [], tmp_path) for _ in range(3)]
    probes = [[cb for cb in t.callbacks if type(cb).__name__ == "Probe"] for t in trainers]
    assert [len(p) for p in probes] == [1, 1, 1]
    assert len({id(p[0]) for p in probes}) == 3  # each Trainer has its own callback
    assert lookups == [{"group": "pytorch_lightning.callbacks_factory"}]  # metadata read once
