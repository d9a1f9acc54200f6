from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpo.cli import main
from hpo.cli._progress import TrialProgress
from hpo.config.experiment import load_experiment
from hpo.errors import ConfigError, DataError, StudyError
from hpo.inference.loading import load_model
from hpo.search.run import TrialReport, run_study
from hpo.study.access import create_or_resume_study
from hpo.views.best_summary import describe_best
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
        assert scalars["hp_metric"][-1][1] == float(torch.tensor(trial.value, dtype=torch.float32))  # TB: float32
        assert hparams["lr"] == pytest.approx(trial.params["lr"])

    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert card["trial"] == best.number and card["value"] == best.value
    assert card["metric"] == "val/auroc" and card["labels"] == {"negative": "benign", "positive": "malignant"}
    assert len(card["features"]) == 30 and len(card["preprocessing"]["columns"]) == 30
    assert [c["kind"] for c in card["columns"]] == ["numeric"] * 30
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
            "sampler": {"name": "tpe", "seed": 2},  # trials 1, 4 and 5 are pruned
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


def test_bad_data_writes_nothing(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    doc = tiny_space(data={"path": str(tmp_path / "missing.csv"), "target": "y"})
    doc["data"].pop("source")
    with pytest.raises(DataError):
        run_study(load_experiment(write_space(doc)), root=root)
    assert not root.exists()


def test_training_that_goes_wrong_is_pruned_and_the_study_goes_on(write_space, write_csv, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    doc = tiny_space(
        study={"n_trials": 6, "sampler": {"name": "random", "seed": 3}},
        params={"lr": {"type": "categorical", "choices": [1.0e12, 0.01]}, "optimizer": "sgd", "momentum": 0.9},
        training={"max_epochs": 2, "batch_size": 4096},  # a batch larger than the data: one batch per epoch
    )
    run_study(load_experiment(write_space(doc)), root=root)
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    exploded = [t for t in study.trials if t.params["lr"] == 1.0e12]
    fine = [t for t in study.trials if t.params["lr"] == 0.01]
    assert exploded and fine
    for trial in exploded:
        assert trial.state == TrialState.PRUNED
        assert "became NaN" in trial.user_attrs["pruned_reason"] or "infinite" in trial.user_attrs["pruned_reason"]
    assert all(t.state == TrialState.COMPLETE for t in fine)
    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert card["params"]["lr"] == 0.01 and card["trial"] == study.best_trial.number

    # Two rows per class: the training split has one row of each, so every epoch is a single two-row batch.
    csv = write_csv("a,b,y\n1,2,0\n2,1,1\n3,3,0\n4,0,1\n", name="tiny.csv")
    small = tiny_space(
        study={"name": "small", "n_trials": 2},
        data={"path": str(csv), "target": "y"},
        training={"max_epochs": 2, "batch_size": 1},
    )
    small["data"].pop("source")
    result = run_study(load_experiment(write_space(small, name="small.yaml")), root=root)
    assert result.finished == 2


@contextlib.contextmanager
def _read_only(folder: Path):
    """No new entries in ``folder``: chattr +i as root (root ignores permissions), chmod 555 otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_unwritable_study_folder_fails_cleanly_and_keeps_best(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    # One experiment (a study refuses another): trial 0 learns almost nothing, trial 1 learns; both queued up front.
    doc = tiny_space(
        study={"n_trials": 1, "metric": "val/loss", "enqueue": [{"lr": 1e-5}, {"lr": 0.05}]},
        training={"max_epochs": 5},
        params={"lr": {"type": "categorical", "choices": [1e-5, 0.05]}, "optimizer": "adam", "momentum": 0.0},
    )
    space = write_space(doc, name="space.yaml")
    run_study(load_experiment(space), root=root, storage=storage)
    best = root / "tiny" / "best"
    before = {name: (best / name).read_bytes() for name in ("model.pt", "model.json")}
    with _read_only(root / "tiny"), pytest.raises(StudyError) as info:
        run_study(load_experiment(space).with_overrides(n_trials=2), root=root, storage=storage)
    message = str(info.value)
    assert "cannot write the best weights of trial 1" in message and "still holds trial 0" in message
    assert {name: (best / name).read_bytes() for name in ("model.pt", "model.json")} == before
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.trials[1].state == TrialState.COMPLETE and study.best_trial.number == 1
    assert not [p for p in (root / "tiny").iterdir() if p.name.startswith(".best-")]


def test_asking_for_a_missing_gpu_is_refused_before_anything_is_written(write_space, tmp_path: Path) -> None:
    exp = load_experiment(write_space(tiny_space(training={"accelerator": "cuda"})))
    if torch.cuda.is_available():  # a CUDA machine: the same file trains there, on the GPU
        assert run_study(exp.with_overrides(n_trials=1), root=tmp_path / "studies").finished == 1
        return
    with pytest.raises(ConfigError, match=r"training\.accelerator: 'cuda' asks for a GPU.*accelerator: auto"):
        run_study(exp, root=tmp_path / "studies")
    assert not (tmp_path / "studies").exists()
    # auto falls back to the CPU
    auto = load_experiment(write_space(tiny_space(training={"accelerator": "auto"})))
    assert run_study(auto.with_overrides(n_trials=1), root=tmp_path / "studies").finished == 1


def test_a_constrained_study_never_promotes_an_infeasible_trial(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    # One hidden layer of 4, 8, 16, 32 or 64 units: 129 to 2049 parameters; only 4 units fit under 200. With this seed
    # the sampler proposes 32, 8, 16, 64, 4, 32 units: five infeasible trials, and the feasible one comes fifth.
    doc = tiny_space(
        study={"n_trials": 6, "constraints": ["model/params <= 200"], "sampler": {"name": "random", "seed": 5}},
        params={"hidden_size": {"type": "categorical", "choices": [4, 8, 16, 32, 64]}, "n_layers": 1},
    )
    doc["params"].update(optimizer="adam")
    del doc["params"]["momentum"]
    states: list[tuple[int, bool, bool]] = []
    reports: list[TrialReport] = []

    def on_trial_end(report: TrialReport) -> None:
        states.append((report.number, report.promoted, (root / "tiny" / "best").exists()))
        reports.append(report)

    run_study(load_experiment(write_space(doc)), root=root, on_trial_end=on_trial_end)
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    violation = {t.number: t.constraints["model/params <= 200"] for t in study.trials}
    feasible = [n for n, v in violation.items() if v <= 0]
    assert len(feasible) == 1 and len(violation) == 6
    assert study.best_trial.number == feasible[0]  # Optuna's own rule: the best feasible trial
    assert max(t.value for t in study.trials) > study.best_trial.value  # better, but infeasible, trials exist
    assert [(n, promoted) for n, promoted, _ in states] == [(n, n == feasible[0]) for n in range(6)]
    assert [r.violated for r in reports] == [() if n == feasible[0] else ("model/params <= 200",) for n in range(6)]
    out = io.StringIO()
    with TrialProgress("tiny", 6, "val/auroc", out) as progress:
        for report in reports:
            progress.update(report)
    lines = out.getvalue().splitlines()
    assert [line.endswith(" [infeasible: model/params <= 200]") for line in lines] == [
        n != feasible[0] for n in range(6)
    ]
    assert [exists for n, _, exists in states] == [n >= feasible[0] for n in range(6)]  # no best/ before it
    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert card["trial"] == feasible[0] and card["feasible"] is True
    assert card["constraints"] == {"model/params <= 200": -71.0} and card["metrics"]["model/params"] == 129.0
    summary = describe_best("tiny", root=root)
    assert summary.trial == feasible[0] and summary.constraints == {"model/params <= 200": -71.0}
    shown = CliRunner().invoke(main, ["best", "--study", "tiny", "--root", str(root)], catch_exceptions=False)
    assert shown.exit_code == 0 and "  model/params <= 200: met, margin 71\n" in shown.output, shown.output


def test_a_constrained_study_without_a_feasible_trial_has_no_best(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    doc = tiny_space(study={"n_trials": 2, "constraints": ["model/params <= 10"]}, training={"max_epochs": 1})
    result = run_study(load_experiment(write_space(doc)), root=root)
    assert result.best_trial is None and result.best_dir is None
    assert not (root / "tiny" / "best").exists()
    with pytest.raises(StudyError, match="no feasible completed trial yet"):
        describe_best("tiny", root=root)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the dead trial is made with ask
def test_a_dead_workers_trial_is_retried_even_when_another_worker_asks_meanwhile(
    write_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing a stale trial and queueing its retry are two writes; a worker asking in between must not take its place.

    The retry callback is slowed down to widen the gap between the two writes. Two workers (threads) share a study of
    one trial whose only trial belongs to a dead worker: the retry must be what runs, and nothing may stay queued.
    """
    root = tmp_path / "studies"
    doc = tiny_space(study={"n_trials": 1, "heartbeat_interval": 1, "grace_period": 3})
    exp = load_experiment(write_space(doc))
    study, _, _ = create_or_resume_study(exp, root=root)
    dead = study.ask()
    exp.space.sample(dead)
    study._storage.record_heartbeat(dead._trial_id)  # then the worker "dies": no more heartbeats
    time.sleep(3.5)  # past the grace period: the trial is stale

    retry = RetryHeartbeatStaleTrialCallback.__call__

    def slow_retry(self: RetryHeartbeatStaleTrialCallback, study: optuna.Study, trial: FrozenTrial) -> None:
        time.sleep(1.0)
        retry(self, study, trial)

    monkeypatch.setattr(RetryHeartbeatStaleTrialCallback, "__call__", slow_retry)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            run_study(exp, root=root, poll_seconds=0.05)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads), errors
    trials = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny")).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], [(t.number, t.state) for t in trials]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[1]) == dead.number
    assert trials[1].params == dead.params


@pytest.mark.parametrize("population", [1, 4])
def test_ctrl_c_inside_training_leaves_ctrl_c_working_in_the_process(
    write_space, tmp_path: Path, population: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning sets SIGINT to "ignore" for good when Ctrl-C interrupts fit; a study run from Python (a notebook)
    would then ignore Ctrl-C, and so would every process it starts afterwards."""
    import signal

    from hpo.train import batches
    from hpo.train import population as population_module

    exp = load_experiment(
        write_space(tiny_space(study={"n_trials": 2}, training={"max_epochs": 20, "population": population}))
    )
    epochs = {"n": 0}

    def ctrl_c_at_epoch_3(iterate: Any) -> Any:
        def wrapped(self: Any) -> Any:
            epochs["n"] += 1
            if epochs["n"] == 3:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C, in the middle of fit
            return iterate(self)

        return wrapped

    monkeypatch.setattr(batches.TensorBatches, "__iter__", ctrl_c_at_epoch_3(batches.TensorBatches.__iter__))
    monkeypatch.setattr(
        population_module._EpochIndex, "__iter__", ctrl_c_at_epoch_3(population_module._EpochIndex.__iter__)
    )
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not a background job)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(exp, root=tmp_path / "studies")
        assert epochs["n"] == 3
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("population", [1, 2])
@pytest.mark.parametrize("when", ["after training", "before training"])
def test_a_trial_another_worker_failed_meanwhile_is_dropped_and_the_run_goes_on(
    write_space,
    tmp_path: Path,
    population: int,
    when: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another worker found a trial's heartbeat stale (this process was paused) and marked it failed while it was
    still running here: Optuna refuses the outcome, and the worker must go on with the next trial. Failed before
    training, the trial's own writes raise too: trial 0, the best so far, attaches its weights as artifacts."""
    from hpo.train.objective import Objective

    root = tmp_path / "studies"
    exp = load_experiment(write_space(tiny_space(study={"n_trials": 3}, training={"population": population})))

    victim = 0 if when == "before training" else 1

    def fail_victim_elsewhere() -> None:
        other = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))  # its own connection
        if other.trials[victim].state == TrialState.RUNNING:
            other.tell(victim, state=TrialState.FAIL)

    def one(self: Objective, trial: optuna.Trial) -> Any:
        if trial.number == victim and when == "before training":
            fail_victim_elsewhere()
        value = original_one(self, trial)
        if trial.number == victim:
            fail_victim_elsewhere()
        return value

    def many(self: Objective, trials: list[optuna.Trial]) -> Any:
        if any(t.number == victim for t in trials) and when == "before training":
            fail_victim_elsewhere()
        outcomes = original_many(self, trials)
        if any(t.number == victim for t in trials):
            fail_victim_elsewhere()
        return outcomes

    original_one, original_many = Objective.__call__, Objective.population
    monkeypatch.setattr(Objective, "__call__", one)
    monkeypatch.setattr(Objective, "population", many)
    with caplog.at_level("WARNING", logger="hpo.search.run"):
        result = run_study(exp, root=root)
    assert result.finished == 3
    study = optuna.load_study(study_name="tiny", storage=_storage(root, "tiny"))
    states = [t.state for t in study.trials]
    assert states[victim] == TrialState.FAIL and states.count(TrialState.COMPLETE) == 3, states
    assert f"trial {victim} was marked failed by another worker" in caplog.text
    card = json.loads((root / "tiny" / "best" / "model.json").read_text())
    assert card["trial"] == study.best_trial.number != victim
