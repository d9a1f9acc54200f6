"""Figure 3: fixed cost per trial at trial 1000 of a SQLite/TPE study, and the share of non-training time."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch

from bench.common import experiment, prepared
from bench.training_cost import PARAMS, plain_loop
from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData
from hpo.model import MLP
from hpo.search.run import TrialReport, run_study
from hpo.study.access import create_or_resume_study
from hpo.train.batches import TensorBatches
from hpo.train.lightning_module import BestEpochCallback, BinaryClassifier
from hpo.train.objective import build_trainer, resolve_params

#: Epochs of the 10k-row trials of figure 3b: the default search space's max_epochs (search_spaces/default.yaml).
EPOCHS_10K = 30

DEFAULT_PARAMS = {
    "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "hidden_size": {"type": "int", "low": 16, "high": 256, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    "optimizer": {"type": "categorical", "choices": ["adam", "adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "condition": {"optimizer": "sgd"}},
}


class TrialClock:
    """Wall time of each trial of a run, measured between the ends of consecutive trials.

    That covers everything the study loop does for a trial (budget checks, ask, training, tell, promotion, progress),
    not only what happens inside Optuna's ``optimize``. Work done inside the callback (``between``) is not counted.
    The first trial is left out: it also pays for loading the study into the process.
    """

    def __init__(self, between: Callable[[TrialReport], None] | None = None) -> None:
        self.between = between
        self.seconds: list[float] = []
        self._last: float | None = None

    def __call__(self, report: TrialReport) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds.append(now - self._last)
        if self.between is not None:
            self.between(report)
        self._last = time.perf_counter()


def _history(exp: Experiment, existing: int) -> list[optuna.trial.FrozenTrial]:
    """``existing`` completed trials of the search space with plausible values, to be added to a study."""
    memory = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(existing):
        trial = memory.ask()
        exp.space.sample(trial)
        memory.tell(trial, 0.9 + 0.0001 * (i % 97))
    return memory.trials


def _tiny_trials(existing: int) -> Experiment:
    doc = {
        "study": {"name": "fixed", "n_trials": existing, "pruner": "none", "sampler": {"name": "tpe", "seed": 0}},
        "training": {"max_epochs": 1, "batch_size": 64},
        "data": {"validation_fraction": 0.9},  # ~57 training rows: one optimizer step, next to nothing to train
        "params": DEFAULT_PARAMS,
    }
    return experiment(doc)


def fixed_cost_at(existing: int, measured: int) -> float:
    """Median seconds per trial for ``measured`` one-epoch trials on 57 rows, after ``existing`` trials."""
    root = Path(tempfile.mkdtemp())
    exp = _tiny_trials(existing)
    study, _, _ = create_or_resume_study(exp, root=root)
    study.add_trials(_history(exp, existing))
    clock = TrialClock()
    run_study(exp.with_overrides(n_trials=existing + measured + 1), root=root, on_trial_end=clock, threads=1)
    return statistics.median(clock.seconds)


def optuna_floor_at(existing: int, measured: int) -> float:
    """Median seconds of Optuna alone for one trial (ask, the same suggestions, tell) on a SQLite file with TPE,
    after ``existing`` trials: what any Optuna study pays per trial, whatever it trains."""
    exp = _tiny_trials(existing)
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'floor.db'}"
    study = optuna.create_study(storage=url, direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials(_history(exp, existing))
    seconds = []
    for _ in range(measured + 1):
        start = time.perf_counter()
        trial = study.ask()
        exp.space.sample(trial)
        study.tell(trial, 0.95)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:])


def lightning_only(exp: Experiment, data: PreparedData, params: dict[str, Any], seed: int) -> None:
    """The training part of a trial with nothing else: the same module, callbacks and Trainer settings as
    :class:`hpo.train.objective.Objective`, but no Optuna trial, no storage and no TensorBoard logger."""
    for name in ("pytorch_lightning", "lightning_fabric"):  # no start-up banners, as in hpo's own trials
        logging.getLogger(name).setLevel(logging.WARNING)
    pl.seed_everything(seed, workers=False, verbose=False)
    params = resolve_params(params, exp)
    kwargs = {k: params[k] for k in ("n_layers", "hidden_size", "dropout", "activation")}
    module = BinaryClassifier(
        MLP(data.n_features, **kwargs),
        params["optimizer"],
        params["lr"],
        params["weight_decay"],
        params.get("momentum", 0.0),
        params["batch_size"],
    )
    best = BestEpochCallback(exp.study.metric, exp.study.direction, exp.training.early_stopping_patience)
    trainer = build_trainer(exp.training, False, [best], Path(tempfile.mkdtemp()))
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    train = TensorBatches(x_train, y_train, len(x_train), shuffle=True, seed=seed)
    val = TensorBatches(x_val, y_val, 65536, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)


def overhead_share(rows: int, trials: int, epochs: int) -> tuple[float, float, float]:
    """Median seconds of (an hpo trial, the same training through Lightning alone, the plain loop) on ``rows``
    synthetic rows; each trial is followed by the other two, so that all three see the same machine load."""
    doc = {
        "study": {"name": "share", "n_trials": trials + 1, "pruner": "none", "sampler": {"name": "random", "seed": 0}},
        "training": {"max_epochs": epochs, "batch_size": 64},
        "params": dict(PARAMS),
    }
    exp = experiment(doc, rows)
    data = prepared(exp)
    bare: list[float] = []
    plain: list[float] = []

    def others_after(report: TrialReport) -> None:
        seed = exp.training.seed + report.number
        start = time.perf_counter()
        lightning_only(exp, data, dict(PARAMS), seed)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_loop(data, epochs, 64, seed=seed)
        plain.append(time.perf_counter() - start)

    clock = TrialClock(others_after)
    run_study(exp, root=Path(tempfile.mkdtemp()), on_trial_end=clock, threads=1)
    return statistics.median(clock.seconds), statistics.median(bare[1:]), statistics.median(plain[1:])


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(1)
    existing = 300 if quick else 999
    cost = fixed_cost_at(existing, 15)
    floor = optuna_floor_at(existing, 15)
    hpo_s, bare_s, plain_s = overhead_share(10_000, 5 if quick else 7, EPOCHS_10K)
    share = max(0.0, hpo_s - bare_s) / hpo_s
    everything = max(0.0, hpo_s - plain_s) / hpo_s
    return [
        (
            f"3a. fixed cost per trial at trial {existing + 1} (SQLite, TPE), and Optuna's own cost for a trial there",
            f"hpo {cost * 1000:.0f} ms; Optuna alone (ask, 8 suggestions, tell) {floor * 1000:.0f} ms",
            f"{cost * 1000:.0f} ms (hpo's own {max(0.0, cost - floor) * 1000:.0f} ms)",
            "<= 30 ms",
        ),
        (
            f"3b. 10k-row trials ({EPOCHS_10K} epochs, batch 64): Optuna + storage + TensorBoard share of wall time "
            "(and everything but a plain loop's work)",
            f"trial {hpo_s:.2f} s; the same training in Lightning alone {bare_s:.2f} s; plain loop {plain_s:.2f} s",
            f"{share:.1%} ({everything:.1%})",
            "<= 5%",
        ),
    ]
