"""Shared pieces of the benchmarks: data sets built with the library's own loader, timing, environment facts."""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytorch_lightning as pl
import torch

from hpo.config.experiment import Experiment, parse_experiment
from hpo.data.loading import PreparedData, load_data

WORK = Path(tempfile.mkdtemp(prefix="hpo-bench-"))


def synthetic_csv(rows: int, features: int = 30, seed: int = 0) -> Path:
    """A binary classification CSV with a learnable but noisy signal (written once per size)."""
    path = WORK / f"synthetic_{rows}.csv"
    if not path.exists():
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, features)).astype(np.float32)
        w = rng.normal(size=features)
        logits = x @ w / np.sqrt(features) * 2.0 + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1]
        y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
        header = ",".join(f"f{i}" for i in range(features)) + ",y"
        np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.5g")
    return path


def interactions_csv(rows: int, features: int = 20, seed: int = 0) -> Path:
    """A binary task that a linear model cannot solve: the label depends on products and curvature of 5 of the
    ``features`` columns (the rest are noise), so that the choice of hyperparameters matters (written once)."""
    path = WORK / f"interactions_{rows}.csv"
    if not path.exists():
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, features)).astype(np.float32)
        logits = 2.5 * (np.sin(2 * x[:, 0]) * x[:, 1] + x[:, 2] * x[:, 3] - 0.5 * x[:, 4] ** 2 + 0.5)
        y = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
        header = ",".join(f"f{i}" for i in range(features)) + ",y"
        np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.5g")
    return path


def experiment(doc: dict[str, Any], rows: int | None = None, csv: Path | None = None) -> Experiment:
    """An experiment on the embedded data, on a synthetic CSV of ``rows`` rows, or on the CSV ``csv``."""
    doc = {**doc}
    doc.setdefault("study", {}).setdefault("n_trials", 1)
    if rows is not None or csv is not None:
        path = csv if csv is not None else synthetic_csv(rows or 0)
        doc["data"] = {"path": str(path), "target": "y", **doc.get("data", {})}
    return parse_experiment(doc, WORK / "bench.yaml")


def prepared(exp: Experiment) -> PreparedData:
    return load_data(exp.data)


def median_time(func: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls (after one warm-up call)."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def environment() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores, {platform.system()} {platform.machine()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, optuna {optuna.__version__}"
    )
