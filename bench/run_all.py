"""Run every benchmark and write docs/benchmarks.md: `python -m bench.run_all [--quick]` (or `make bench`)."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import optuna

from bench import light_commands, loader, preprocessing, recipe, search_quality, study_costs, training_cost, workers
from bench.common import environment

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


NOTES = [
    "## How to read it",
    "",
    "- Figure 1 on a CUDA GPU: `python -m bench.gpu` writes [benchmarks-gpu.md](benchmarks-gpu.md).",
    "- 3a is measured between the ends of consecutive trials, so it covers everything `hpo run` does for a trial "
    "(budget check, ask, the sampler, storage writes, Trainer and logger set-up, tell, promotion of a new best, "
    "progress). Beside it, Optuna alone doing only ask, the same eight suggestions and tell on a SQLite file with the "
    "same 999 earlier trials: that is a floor any Optuna study pays per trial, and at trial 1000 it is above the "
    "30 ms target by itself (TPE's Parzen estimators over 1000 trials, and about 2 ms per storage call). The part "
    "hpo adds is shown in brackets.",
    "- 3b compares a trial with the plain loop doing the same training, run right after each trial so that both see "
    "the same machine load; the trials use the default search space's training settings (30 epochs, batch 64).",
    "- 6 and 7 run on a task where the hyperparameters matter (on the embedded data almost every configuration is "
    "within 0.5% of the best): the label depends on products and curvature of five of twenty columns. The default "
    "pruner and sampler (hpo/config/algorithms.py) were chosen from these figures.",
    "",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    rows = []
    for module in (training_cost, loader, study_costs, recipe, workers, search_quality, light_commands, preprocessing):
        t0 = time.perf_counter()
        rows += module.run(quick=args.quick)
        print(f"{module.__name__}: {time.perf_counter() - t0:.0f} s", flush=True)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench.run_all`) on {dt.date.today()}, in "
        f"{time.perf_counter() - started:.0f} s. Machine: {environment()}.",
        "",
        "Each ratio compares two things measured side by side in the same run (medians of repeated runs where it "
        "says so); these machines are noisy, so rerun before reading much into a difference of a few percent.",
        "",
        "| figure | measured | result | target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        *NOTES,
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
