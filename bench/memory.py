"""Resident memory of one worker after 20 and after 200 trials: it should stay flat (target: within 50 MB); and what
that memory is, import by import.

Runs a real study in this process (tiny trials on the embedded data, SQLite storage, TensorBoard logging, best
weights) and prints both numbers and their difference. Then, in a fresh interpreter, the resident memory each layer
of a worker's imports adds, in the order a worker loads them; what the study holds beyond its imports is the rest.
Usage: ``python -m bench.memory [--trials 200] [--early 20]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import torch

from hpo.config.experiment import parse_experiment
from hpo.search.run import TrialReport, run_study

#: A worker's imports in the order ``hpo run`` loads them, each with what pulls it in. Lightning imports torch._dynamo
#: (lightning_fabric.wrappers) and torchmetrics, and torchmetrics imports matplotlib.pyplot whenever it is installed.
LAYERS = [
    ("numpy", "numpy"),
    ("pandas", "pandas (hpo.data.loading reads CSV files with it)"),
    ("sqlalchemy", "SQLAlchemy (Optuna's RDB storage)"),
    ("optuna", "Optuna"),
    ("hpo.search.run", "hpo up to the study loop"),
    ("torch", "torch"),
    ("torch._dynamo", "torch._dynamo and sympy (imported by lightning_fabric.wrappers)"),
    ("matplotlib.pyplot", "matplotlib (imported by torchmetrics because it is installed)"),
    ("torchmetrics", "torchmetrics and scipy (imported by Lightning, used by hpo.metrics)"),
    ("pytorch_lightning", "pytorch-lightning"),
    ("torch.utils.tensorboard", "TensorBoard writer"),
    ("hpo.train.objective", "hpo's training"),
]

_MEASURE = """
import importlib, json, sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
sizes = [("python", rss())]
for module in sys.argv[1:]:
    importlib.import_module(module)
    sizes.append((module, rss()))
print(json.dumps(sizes))
"""


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def import_layers() -> list[tuple[str, float]]:
    """(what, MB it adds) for the interpreter itself and each of :data:`LAYERS`, measured in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *(module for module, _ in LAYERS)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    sizes = json.loads(out.strip().splitlines()[-1])
    names = ["the Python interpreter"] + [what for _, what in LAYERS]
    return [(names[0], sizes[0][1])] + [
        (name, after[1] - before[1]) for name, before, after in zip(names[1:], sizes[:-1], sizes[1:], strict=True)
    ]


def study_rss(trials: int, early: int) -> tuple[float, float]:
    """RSS in MB once ``early`` trials have finished (or the first report after that: trials trained as one
    population are reported together) and after all ``trials``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    doc = {
        "study": {"name": "memory", "n_trials": trials, "pruner": "none", "sampler": {"name": "random", "seed": 0}},
        "training": {"max_epochs": 1, "batch_size": 128},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden_size": 16},
    }
    experiment = parse_experiment(doc, Path("bench/memory.yaml"))
    samples: dict[str, float] = {}

    def on_trial_end(report: TrialReport) -> None:
        if report.finished >= early and "early" not in samples:
            gc.collect()
            samples["early"] = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        run_study(experiment, root=Path(tmp) / "studies", on_trial_end=on_trial_end, threads=1, finalize=False)
        gc.collect()
        samples["late"] = rss_mb()
    return samples["early"], samples["late"]


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """The memory row of docs/benchmarks.md."""
    trials, early = (60, 20) if quick else (200, 20)
    first, last = study_rss(trials, early)
    layers = import_layers()
    imported = sum(mb for _, mb in layers)
    biggest = sorted(layers[1:], key=lambda layer: -layer[1])[:5]
    return [
        (
            f"M. resident memory of a worker after {early} and {trials} tiny trials (embedded data, SQLite, "
            "TensorBoard, best weights), and what it is",
            f"{first:.0f} MB then {last:.0f} MB; {imported:.0f} MB of it is imports (Python {layers[0][1]:.0f}, "
            + ", ".join(f"{name.split(' (')[0]} {mb:.0f}" for name, mb in biggest)
            + f"), the rest {first - imported:.0f} MB",
            f"{last - first:+.1f} MB",
            "< 50 MB growth",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--early", type=int, default=20)
    args = parser.parse_args()
    early, late = study_rss(args.trials, args.early)
    print(
        f"machine: {platform.machine()} {platform.system()}, python {platform.python_version()}, torch "
        f"{torch.__version__}, optuna {optuna.__version__}"
    )
    print("| trials | RSS (MB) |")
    print("|---|---|")
    print(f"| {args.early} | {early:.1f} |")
    print(f"| {args.trials} | {late:.1f} |")
    print(f"growth: {late - early:+.1f} MB (target: within 50 MB) -> {'OK' if late - early <= 50 else 'TOO MUCH'}")
    layers = import_layers()
    imported = sum(mb for _, mb in layers)
    print()
    print("| what the worker's RSS is | MB |")
    print("|---|---|")
    for name, mb in layers:
        print(f"| {name} | {mb:.0f} |")
    print(f"| everything imported | {imported:.0f} |")
    rest = early - imported
    print(f"| the rest: data, models, caches, allocator (RSS after {args.early} trials minus imports) | {rest:.0f} |")


if __name__ == "__main__":
    main()
