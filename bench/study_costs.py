"""Figure 3: fixed cost per trial at trial 1000 of a SQLite/TPE study, and the share of non-training time."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import optuna
import torch

from bench.common import experiment, prepared
from bench.training_cost import PARAMS, plain_loop
from hpo.study import TrialReport, open_study, run_study

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


def fixed_cost_at(existing: int, measured: int) -> float:
    """Median seconds per trial for ``measured`` trials of one epoch on 64 rows, after ``existing`` trials."""
    root = Path(tempfile.mkdtemp())
    doc = {
        "study": {"name": "fixed", "n_trials": existing, "pruner": "none", "sampler": {"name": "tpe", "seed": 0}},
        "training": {"max_epochs": 1, "batch_size": 64},
        "data": {"validation_fraction": 0.9},  # ~57 training rows: one optimizer step, next to nothing to train
        "params": DEFAULT_PARAMS,
    }
    exp = experiment(doc)
    study, _, _ = open_study(exp, root=root)
    memory = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(existing):
        trial = memory.ask()
        exp.space.sample(trial)
        memory.tell(trial, 0.9 + 0.0001 * (i % 97))
    study.add_trials(memory.trials)
    seconds: list[float] = []

    def record(report: TrialReport) -> None:
        seconds.append(report.seconds)

    more = exp.with_overrides(n_trials=existing + measured)
    run_study(more, root=root, on_trial_end=record, threads=1)
    return statistics.median(seconds)


def overhead_share(rows: int, trials: int) -> tuple[float, float]:
    """(median hpo trial seconds, median plain loop seconds) for trials on ``rows`` synthetic rows."""
    doc = {
        "study": {"name": "share", "n_trials": trials, "pruner": "none", "sampler": {"name": "random", "seed": 0}},
        "training": {"max_epochs": 10, "batch_size": 64},
        "params": {k: v for k, v in PARAMS.items()},
    }
    exp = experiment(doc, rows)
    seconds: list[float] = []
    run_study(exp, root=Path(tempfile.mkdtemp()), on_trial_end=lambda r: seconds.append(r.seconds), threads=1)
    data = prepared(exp)
    plain = []
    for _ in range(3):
        import time

        start = time.perf_counter()
        plain_loop(data, 10, 64, seed=0)
        plain.append(time.perf_counter() - start)
    return statistics.median(seconds), statistics.median(plain)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(1)
    cost = fixed_cost_at(999 if not quick else 300, 15)
    hpo_s, plain_s = overhead_share(10_000, 5)
    share = max(0.0, hpo_s - plain_s) / hpo_s
    return [
        (
            "3a. fixed cost per trial at trial 1000 (SQLite, TPE)",
            f"{cost * 1000:.0f} ms median",
            f"{cost * 1000:.0f} ms",
            "<= 30 ms",
        ),
        (
            "3b. 10k-row trials: Optuna + storage + TensorBoard + Lightning share of wall time",
            f"trial {hpo_s:.2f} s vs plain loop {plain_s:.2f} s",
            f"{share:.1%}",
            "<= 5%",
        ),
    ]
