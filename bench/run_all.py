"""Run every benchmark and write docs/benchmarks.md: `python -m bench.run_all [--quick]` (or `make bench`)."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import optuna

from bench import loader, recipe, search_quality, study_costs, training_cost, workers
from bench.common import environment

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    rows = []
    for module in (training_cost, loader, study_costs, recipe, workers, search_quality):
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
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
