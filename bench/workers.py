"""Figure 5: `hpo run --workers 2` vs `--workers 1`, completed trials per minute from the storage's timestamps."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import yaml

REPO = Path(__file__).resolve().parents[1]


def trials_per_minute(workers: int, n_trials: int) -> float:
    folder = Path(tempfile.mkdtemp())
    doc = {
        "study": {"name": "w", "n_trials": n_trials, "pruner": "none", "sampler": {"name": "random", "seed": 0}},
        "training": {"max_epochs": 20, "batch_size": 32},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}, "hidden_size": 64},
    }
    (folder / "w.yaml").write_text(yaml.safe_dump(doc))
    subprocess.run(
        [sys.executable, "-m", "hpo.cli", "run", "w.yaml", "--workers", str(workers)],
        cwd=folder,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{folder / 'studies' / 'w' / 'study.db'}")
    trials = study.trials
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return len(trials) / ((end - start).total_seconds() / 60)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    n = 16 if quick else 30
    one = trials_per_minute(1, n)
    two = trials_per_minute(2, n)
    return [
        (
            "5. --workers 2 vs 1 (embedded data, 20 epochs)",
            f"{two:.0f} vs {one:.0f} trials/min",
            f"{two / one:.2f}x",
            ">= 1.7x",
        )
    ]
