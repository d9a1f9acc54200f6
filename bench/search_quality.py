"""Figures 6 and 7: the default pruner vs none, and the default TPE sampler vs random search, over several seeds;
7b: TPE over a window of recent trials (``max_history``) vs the whole history, in studies long enough for it to
matter.

On the embedded data nearly every configuration scores within 0.5% of the best, which says nothing about search;
figures 6 and 7 use a task where the hyperparameters matter (bench.common.interactions_csv: the label depends on
products and curvature of a few columns). A window only changes what TPE sees after ``max_history + 25`` trials
(below that it proposes exactly what Optuna's TPE does), so 7b needs hundreds of trials: they score a stand-in for
training (:func:`surrogate_score`) instead of training. Studies are independent and only their values and epochs are
compared, so they run two at a time (one per core).
"""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from bench.common import experiment, interactions_csv
from bench.study_costs import DEFAULT_PARAMS
from hpo.config.algorithms import DEFAULT_PRUNER, DEFAULT_SAMPLER, MIN_MAX_HISTORY, SAMPLERS, parse_algorithm
from hpo.search.run import run_study
from hpo.study.samplers import build_sampler

SEEDS = (0, 1, 2, 3, 4)
ROWS, EPOCHS = 3000, 10


def _study(sampler: dict[str, Any], pruner: dict[str, Any] | str, seed: int, n_trials: int) -> list[tuple]:
    """Run one study; return (number, value, epochs trained) of each trial."""
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp())
    doc = {
        "study": {"name": "q", "n_trials": n_trials, "sampler": {**sampler, "seed": seed}, "pruner": pruner},
        "training": {"max_epochs": EPOCHS, "seed": seed},
        "data": {"split_seed": 42},
        "params": DEFAULT_PARAMS,
    }
    run_study(experiment(doc, csv=interactions_csv(ROWS)), root=root, threads=1)
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{root / 'q' / 'study.db'}")
    return [(t.number, t.value, int(t.user_attrs.get("epochs_trained", 0))) for t in study.trials]


def _best(trials: list[tuple]) -> float:
    return max(value for _, value, _ in trials if value is not None)


def _epochs(trials: list[tuple]) -> int:
    return sum(epochs for _, _, epochs in trials)


def _trials_to_reach(trials: list[tuple], target: float) -> int:
    best = float("-inf")
    for index, (_, value, _) in enumerate(sorted(trials), start=1):
        if value is not None:
            best = max(best, value)
        if best >= target:
            return index
    return len(trials) + 1


def surrogate_score(params: dict[str, Any], rng: np.random.Generator) -> float:
    """A validation score in (0.5, 0.95) for a point of bench.study_costs.DEFAULT_PARAMS, as training might give it:
    a narrow best learning rate that depends on the optimizer, momentum mattering for SGD only, dropout that must grow
    with the width, two layers best, a mild batch-size effect, and noise of 0.002 (a retrained model's spread)."""
    lr, wd = math.log10(params["lr"]), math.log10(params["weight_decay"])
    optimizer = params["optimizer"]
    score = -(((lr - {"adam": -2.6, "adamw": -2.4, "sgd": -1.3}[optimizer]) / 0.35) ** 2)
    if optimizer == "sgd":
        score -= ((params["momentum"] - 0.92) / 0.06) ** 2
    score -= 0.5 * ((wd + (4.0 if optimizer == "adamw" else 5.0)) / 1.2) ** 2
    width = math.log2(params["hidden_size"])
    score -= ((params["dropout"] - 0.05 * (width - 4)) / 0.12) ** 2
    score -= 0.6 * (params["n_layers"] - 2) ** 2 + 0.3 * ((width - 6.5) / 1.5) ** 2
    score -= {32: 0.2, 64: 0.0, 128: 0.25}[params["batch_size"]]
    return 0.5 + 0.45 * math.exp(score / 4) + float(rng.normal(0, 0.002))


def _window_study(max_history: int | None, seed: int, n_trials: int) -> list[float]:
    """The values, in trial order, of a study of the default sampler (with ``max_history``) on the surrogate."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp = experiment({"study": {"name": "w"}, "params": DEFAULT_PARAMS})
    raw = {**DEFAULT_SAMPLER, "seed": seed, "max_history": max_history}
    sampler = build_sampler(parse_algorithm(raw, "study.sampler", SAMPLERS, DEFAULT_SAMPLER))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_trials):
        trial = study.ask()
        value = surrogate_score(exp.space.sample(trial), rng)
        study.tell(trial, value)
        values.append(value)
    return values


def _first_reaching(values: list[float], target: float) -> int:
    """The number of trials after which the best value is at least ``target`` (``len(values) + 1``: never)."""
    return next((i for i, best in enumerate(itertools.accumulate(values, max), 1) if best >= target), len(values) + 1)


def window_quality(quick: bool = False) -> tuple[str, str, str, str]:
    """Figure 7b: the smallest window (max_history=225) against TPE over the whole history, same seeds."""
    n_trials = 300 if quick else 500
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        jobs = {
            (w, seed): pool.submit(_window_study, w, seed, n_trials) for w in (None, MIN_MAX_HISTORY) for seed in SEEDS
        }
        done = {key: job.result() for key, job in jobs.items()}
    full = [done[None, seed] for seed in SEEDS]
    window = [done[MIN_MAX_HISTORY, seed] for seed in SEEDS]
    full_needed, window_needed = [], []
    for a, b in zip(full, window, strict=True):
        target = max(max(a), max(b)) * (1 - 0.001)
        full_needed.append(_first_reaching(a, target))
        window_needed.append(_first_reaching(b, target))
    best_full, best_window = [max(v) for v in full], [max(v) for v in window]
    late = MIN_MAX_HISTORY + 25
    gain_full = [max(v) - max(v[:late]) for v in full]
    gain_window = [max(v) - max(v[:late]) for v in window]
    return (
        f"7b. TPE over the last {MIN_MAX_HISTORY} trials + best 25 (smallest max_history) vs the whole history: best "
        f"value after {n_trials} trials of a surrogate of training on figure 7's search space ({len(SEEDS)} seeds; the "
        f"window binds from trial {late + 1}), and trials to reach 0.1% of the best either found",
        f"best whole {[round(b, 4) for b in best_full]}, window {[round(b, 4) for b in best_window]}; gained after "
        f"trial {late}: whole {[round(g, 4) for g in gain_full]}, window {[round(g, 4) for g in gain_window]}; trials "
        f"needed: whole {full_needed}, window {window_needed}",
        f"median best {statistics.median(best_full):.4f} vs {statistics.median(best_window):.4f}",
        "within the whole history's spread",
    )


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    return [*pruner_and_sampler(quick), window_quality(quick)]


def pruner_and_sampler(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """Figures 6 and 7."""
    n_trials = 12 if quick else 20
    tpe = {k: v for k, v in DEFAULT_SAMPLER.items() if k != "seed"}
    jobs = {
        "pruned": [(tpe, dict(DEFAULT_PRUNER), seed, n_trials) for seed in SEEDS],
        "full": [(tpe, "none", seed, n_trials) for seed in SEEDS],
        "random": [({"name": "random"}, "none", seed, n_trials) for seed in SEEDS],
    }
    interactions_csv(ROWS)  # written once, before the workers start
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = {key: [pool.submit(_study, *args) for args in batch] for key, batch in jobs.items()}
        done = {key: [f.result() for f in batch] for key, batch in futures.items()}
    pruned, full, rnd = done["pruned"], done["full"], done["random"]

    saved = 1 - sum(map(_epochs, pruned)) / sum(map(_epochs, full))
    losses = [(_best(f) - _best(p)) / _best(f) for f, p in zip(full, pruned, strict=True)]
    pruner_name = ", ".join(f"{k}={v}" for k, v in DEFAULT_PRUNER.items() if k != "name")
    tpe_needed, random_needed = [], []
    for a, b in zip(full, rnd, strict=True):
        target = max(_best(a), _best(b)) * (1 - 0.005)
        tpe_needed.append(_trials_to_reach(a, target))
        random_needed.append(_trials_to_reach(b, target))
    task = f"{len(SEEDS)} seeds, {n_trials} trials of {EPOCHS} epochs, {ROWS} rows with interactions"
    return [
        (
            f"6. default pruner ({DEFAULT_PRUNER['name']}: {pruner_name}) vs none ({task})",
            f"epochs {sum(map(_epochs, pruned))} vs {sum(map(_epochs, full))}; best value loss median "
            f"{statistics.median(losses):.2%}, worst {max(losses):.2%}",
            f"{saved:.0%} fewer epochs",
            ">= 40% fewer, <= 1% loss",
        ),
        (
            f"7. default TPE vs random: trials to reach 0.5% of the best either found ({task}; "
            f"{n_trials + 1} = not reached)",
            f"TPE {tpe_needed}, random {random_needed}",
            f"median {statistics.median(tpe_needed)} vs {statistics.median(random_needed)}",
            "reported",
        ),
    ]
