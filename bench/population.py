"""Figure 11: population training (``training.population: P``) against one trial at a time.

a. The embedded default (search_spaces/default.yaml: its space, sampler, pruner and 30 epochs on the 569-row
   data): trials per minute with P = 1, 4, 8 and 16, each over the same number of trials and seeds, with the best
   validation AUROC each reached (search quality).
b. A space of small MLPs on the same data without pruning: P = 16 vs P = 1.
c. The 20k-row task of figure 4 (8 trials x 4 epochs): P = 8 vs P = 1, and time to the best AUROC all reach
   against the usual Optuna + Lightning recipe (bench/recipe.py).
d. Search quality where hyperparameters matter (figure 7's task, 3000 rows with interactions): best value after
   20 trials with P = 1 and P = 8, over 5 seeds.

Every run is ``run_study`` in this process (finalisation off: the figure is about the search), runs of different P
interleaved so that they see the same machine load. ``python -m bench.population [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

from bench import recipe
from bench.common import environment, experiment, interactions_csv
from bench.study_costs import DEFAULT_PARAMS
from hpo.config.experiment import Experiment, parse_experiment
from hpo.search.run import TrialReport, run_study

REPO = Path(__file__).resolve().parents[1]


def _default_experiment(population: int, trials: int, seed: int, accelerator: str | None = None) -> Experiment:
    """The embedded default study with ``population`` P, ``trials`` trials and ``seed`` (and ``accelerator``, if
    given, instead of the file's)."""
    doc = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
    if accelerator is not None:
        doc["training"]["accelerator"] = accelerator
    doc["study"] |= {"name": f"p{population}s{seed}", "n_trials": trials, "timeout": None}
    doc["study"]["sampler"]["seed"] = seed
    doc["data"]["test_fraction"] = 0
    doc["training"]["population"] = population
    doc["training"]["seed"] = seed
    return parse_experiment(doc, REPO / "search_spaces" / "default.yaml")


def timed_run(exp: Experiment) -> tuple[float, float, list[tuple[float, float]]]:
    """(seconds, best value, [(seconds, best so far) after each trial]) of one study run in this process."""
    curve: list[tuple[float, float]] = []
    start = time.perf_counter()

    def record(report: TrialReport) -> None:
        if report.best_value is not None:
            curve.append((time.perf_counter() - start, report.best_value))

    result = run_study(exp, root=Path(tempfile.mkdtemp()), on_trial_end=record, finalize=False)
    return time.perf_counter() - start, float(result.best_value or float("nan")), curve


def embedded(populations: list[int], trials: int, seeds: list[int]) -> dict[int, tuple[list[float], list[float]]]:
    """P -> (seconds per run, best value per run) on the embedded default, runs interleaved."""
    out: dict[int, tuple[list[float], list[float]]] = {p: ([], []) for p in populations}
    timed_run(_default_experiment(populations[-1], min(trials, populations[-1]), 999))  # warm-up (imports, caches)
    for seed in seeds:
        for p in populations:
            seconds, best, _ = timed_run(_default_experiment(p, trials, seed))
            out[p][0].append(seconds)
            out[p][1].append(best)
            print(f"  embedded P={p} seed={seed}: {seconds:.1f} s, best {best:.4f}", flush=True)
    return out


def large(population: int, seed: int = 0) -> tuple[float, float, list[tuple[float, float]]]:
    """Figure 4's hpo run (20k rows, 8 trials x 4 epochs) with ``population``."""
    doc: dict[str, Any] = {
        "study": {"name": f"large{population}", "n_trials": recipe.TRIALS, "sampler": {"name": "tpe", "seed": seed}},
        "training": {"max_epochs": recipe.EPOCHS, "population": population},
        "data": {"split_seed": 0},
        "params": DEFAULT_PARAMS,
    }
    return timed_run(experiment(doc, recipe.ROWS))


def quality(populations: list[int], trials: int, seeds: list[int]) -> dict[int, list[float]]:
    """P -> best value per seed on figure 7's task (3000 rows where the hyperparameters matter)."""
    out: dict[int, list[float]] = {p: [] for p in populations}
    for seed in seeds:
        for p in populations:
            doc: dict[str, Any] = {
                "study": {"name": f"q{p}s{seed}", "n_trials": trials, "sampler": {"name": "tpe", "seed": seed}},
                "training": {"max_epochs": 10, "population": p, "seed": seed},
                "data": {"split_seed": 42},
                "params": DEFAULT_PARAMS,
            }
            _, best, _ = timed_run(experiment(doc, csv=interactions_csv(3000)))
            out[p].append(best)
            print(f"  quality P={p} seed={seed}: best {best:.4f}", flush=True)
    return out


NARROW_PARAMS: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 2},
    "hidden_size": {"type": "int", "low": 8, "high": 32},
    "optimizer": {"type": "categorical", "choices": ["adam", "adamw"]},
}


def narrow(population: int, trials: int) -> tuple[float, float]:
    """(seconds, best value) of a space of small MLPs (the case population training is built for) on the embedded
    data: 30 epochs, batch 64, no pruning."""
    doc: dict[str, Any] = {
        "study": {"name": f"n{population}", "n_trials": trials, "sampler": {"name": "tpe", "seed": 0}},
        "training": {"max_epochs": 30, "population": population, "batch_size": 64},
        "data": {"source": "breast_cancer", "test_fraction": 0},
        "params": NARROW_PARAMS,
    }
    doc["study"]["pruner"] = {"name": "none"}
    seconds, best, _ = timed_run(experiment(doc))
    return seconds, best


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(2)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    rows: list[tuple[str, str, str, str]] = []
    populations = [1, 4, 8, 16]
    trials = 16 if quick else 32
    seeds = [0] if quick else [0, 1]
    emb = embedded(populations, trials, seeds)
    per_minute = {p: 60 * trials / statistics.median(emb[p][0]) for p in populations}
    best = {p: statistics.mean(emb[p][1]) for p in populations}
    top = max(populations, key=lambda p: per_minute[p])
    rows.append(
        (
            f"11a. trials per minute, embedded default (search_spaces/default.yaml, {trials} trials, "
            f"{len(seeds)} seed(s)) with training.population P",
            ", ".join(f"P={p}: {per_minute[p]:.0f}/min (best {best[p]:.4f})" for p in populations),
            f"P={top}: {per_minute[top] / per_minute[1]:.1f}x P=1",
            ">= 3x at equal search quality",
        )
    )
    small = {p: [narrow(p, trials) for _ in range(1 if quick else 2)] for p in (1, 16)}
    small_rate = {p: 60 * trials / statistics.median(s for s, _ in runs) for p, runs in small.items()}
    rows.append(
        (
            f"11b. trials per minute, small MLPs (hidden 8-32, 1-2 layers, no pruning, 30 epochs, embedded data, "
            f"{trials} trials)",
            f"P=16: {small_rate[16]:.0f}/min (best {small[16][0][1]:.4f}), P=1: {small_rate[1]:.0f}/min "
            f"(best {small[1][0][1]:.4f})",
            f"{small_rate[16] / small_rate[1]:.1f}x",
            "reported",
        )
    )
    big1 = large(1)
    big8 = large(8)
    reference = recipe.reference_curve(0)
    target = min(big8[1], big1[1], reference[-1][1])
    to_8, to_1, to_ref = (recipe._time_to(c, target) for c in (big8[2], big1[2], reference))
    fastest = min(to_8, to_1)
    rows.append(
        (
            f"11c. 20k rows, {recipe.TRIALS} trials x {recipe.EPOCHS} epochs: whole budget with P=8 vs P=1, and time "
            f"to AUROC {target:.4f} (best all reach) against the usual recipe",
            f"budget {big8[0]:.1f} s vs {big1[0]:.1f} s; to target: P=8 {to_8:.1f} s, P=1 {to_1:.1f} s, usual recipe "
            f"{to_ref:.1f} s (its budget {reference[-1][0]:.0f} s)",
            f"P=8 {big1[0] / big8[0]:.2f}x P=1; hpo {to_ref / fastest:.1f}x faster to target",
            ">= 20x to target",
        )
    )
    if not quick:
        qual = quality([1, 8], 20, [0, 1, 2, 3, 4])
        rows.append(
            (
                "11d. search quality, figure 7's task (3000 rows with interactions), best value after 20 trials, "
                "5 seeds",
                f"P=1 {[round(v, 4) for v in qual[1]]}, P=8 {[round(v, 4) for v in qual[8]]}",
                f"mean {statistics.mean(qual[1]):.4f} vs {statistics.mean(qual[8]):.4f}",
                "equal within the spread",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials and seeds (a smoke run)")
    args = parser.parse_args()
    print(environment())
    for row in run(quick=args.quick):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
