"""Resident memory of one worker after 20 and after 200 trials: it should stay flat (target: within 50 MB).

Runs a real study in this process (tiny trials on the embedded data, SQLite storage, TensorBoard logging, best
weights) and prints both numbers and their difference. Usage: ``python bench/memory.py [--trials 200]``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import tempfile
from pathlib import Path

import optuna
import torch

from hpo.config.experiment import parse_experiment
from hpo.search.run import TrialReport, run_study


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--early", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    doc = {
        "study": {
            "name": "memory",
            "n_trials": args.trials,
            "pruner": "none",
            "sampler": {"name": "random", "seed": 0},
        },
        "training": {"max_epochs": 1, "batch_size": 128},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden_size": 16},
    }
    experiment = parse_experiment(doc, Path("bench/memory.yaml"))
    samples: dict[int, float] = {}

    def on_trial_end(report: TrialReport) -> None:
        if report.finished in (args.early, args.trials):
            gc.collect()
            samples[report.finished] = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        run_study(experiment, root=Path(tmp) / "studies", on_trial_end=on_trial_end, threads=1)
    early, late = samples[args.early], samples[args.trials]
    print(
        f"machine: {platform.machine()} {platform.system()}, python {platform.python_version()}, torch "
        f"{torch.__version__}, optuna {optuna.__version__}"
    )
    print("| trials | RSS (MB) |")
    print("|---|---|")
    print(f"| {args.early} | {early:.1f} |")
    print(f"| {args.trials} | {late:.1f} |")
    print(f"growth: {late - early:+.1f} MB (target: within 50 MB) -> {'OK' if late - early <= 50 else 'TOO MUCH'}")


if __name__ == "__main__":
    main()
