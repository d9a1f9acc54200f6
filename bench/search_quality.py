"""Figures 6 and 7: the default pruner vs none, and TPE vs random search, over several seeds."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import optuna
import torch

from bench.common import experiment
from bench.study_costs import DEFAULT_PARAMS
from hpo.algorithms import DEFAULT_PRUNER
from hpo.study import run_study

SEEDS = (0, 1, 2, 3, 4)


def _study(sampler: dict, pruner: dict | str, seed: int, n_trials: int) -> optuna.Study:
    root = Path(tempfile.mkdtemp())
    doc = {
        "study": {"name": "q", "n_trials": n_trials, "sampler": {**sampler, "seed": seed}, "pruner": pruner},
        "training": {"max_epochs": 20, "seed": seed},
        "data": {"split_seed": 42},
        "params": DEFAULT_PARAMS,
    }
    run_study(experiment(doc), root=root, threads=1)
    return optuna.load_study(study_name="q", storage=f"sqlite:///{root / 'q' / 'study.db'}")


def _epochs(study: optuna.Study) -> int:
    return sum(int(t.user_attrs.get("epochs_trained", 0)) for t in study.trials)


def pruning(n_trials: int) -> tuple[str, str, str, str]:
    pruned_epochs, full_epochs, losses = [], [], []
    for seed in SEEDS:
        with_pruner = _study({"name": "tpe"}, dict(DEFAULT_PRUNER), seed, n_trials)
        without = _study({"name": "tpe"}, "none", seed, n_trials)
        pruned_epochs.append(_epochs(with_pruner))
        full_epochs.append(_epochs(without))
        losses.append((without.best_value - with_pruner.best_value) / without.best_value)
    saved = 1 - sum(pruned_epochs) / sum(full_epochs)
    return (
        "6. median pruner vs none (5 seeds, 20 trials, 20 epochs)",
        f"epochs {sum(pruned_epochs)} vs {sum(full_epochs)}; best value loss median {statistics.median(losses):.2%}",
        f"{saved:.0%} fewer epochs",
        ">= 40% fewer, <= 1% loss",
    )


def _trials_to_reach(study: optuna.Study, target: float) -> int:
    best = float("-inf")
    for index, trial in enumerate(sorted(study.trials, key=lambda t: t.number), start=1):
        if trial.value is not None:
            best = max(best, trial.value)
        if best >= target:
            return index
    return len(study.trials) + 1


def sampler(n_trials: int) -> tuple[str, str, str, str]:
    tpe_needed, random_needed = [], []
    for seed in SEEDS:
        tpe = _study({"name": "tpe"}, "none", seed, n_trials)
        rnd = _study({"name": "random"}, "none", seed, n_trials)
        target = max(tpe.best_value, rnd.best_value) * (1 - 0.005)
        tpe_needed.append(_trials_to_reach(tpe, target))
        random_needed.append(_trials_to_reach(rnd, target))
    return (
        "7. TPE vs random: trials to reach 0.5% of the best (5 seeds)",
        f"TPE {tpe_needed}, random {random_needed}",
        f"median {statistics.median(tpe_needed)} vs {statistics.median(random_needed)}",
        "reported",
    )


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(1)
    return [pruning(12 if quick else 20), sampler(12 if quick else 20)]
