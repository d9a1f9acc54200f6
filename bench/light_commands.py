"""Figure 8: wall time of the light commands (`hpo best`, `hpo studies`, `hpo --help`, a bad search-space file)
against `python -c pass` and `python -c "import pytorch_lightning"`, medians of interleaved runs.

`python -m bench.light_commands [--repeats N]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution

from bench.common import environment

REPO = Path(__file__).resolve().parents[1]


def _study_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hpo-light-"))
    (folder / "studies" / "light").mkdir(parents=True)
    study = optuna.create_study(
        study_name="light", storage=f"sqlite:///{folder}/studies/light/study.db", direction="maximize"
    )
    study.set_user_attr("metric", "val/auroc")
    distributions = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    for i in range(50):
        study.add_trial(
            optuna.trial.create_trial(params={"lr": 1e-3 * (1 + i)}, distributions=distributions, value=i / 100)
        )
    (folder / "bad.yaml").write_text("study: {name: x}\nbogus: 1\n", encoding="utf-8")
    return folder


def _seconds(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def measure(repeats: int) -> dict[str, float]:
    """Median seconds of each command, the commands interleaved so that all see the same machine load."""
    folder = _study_folder()
    hpo = [sys.executable, "-m", "hpo.cli"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import pytorch_lightning": [sys.executable, "-c", "import pytorch_lightning"],
        "hpo --help": [*hpo, "--help"],
        "hpo best": [*hpo, "best", "--study", "light"],
        "hpo studies": [*hpo, "studies"],
        "hpo run bad.yaml": [*hpo, "run", "bad.yaml"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            times[name].append(_seconds(command, folder))
    return {name: statistics.median(values) for name, values in times.items()}


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    medians = measure(3 if quick else 7)
    base = medians["python -c pass"]
    worst = max(medians["hpo best"], medians["hpo studies"]) - base
    shown = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in medians.items())
    return [("8. light commands (median wall time)", shown, f"hpo best/studies: +{worst:.2f} s", "<= +1 s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    medians = measure(args.repeats)
    base = medians["python -c pass"]
    print(f"Machine: {environment()}")
    print(f"{'command':<28}{'median s':>10}{'minus python -c pass':>24}")
    for name, seconds in medians.items():
        print(f"{name:<28}{seconds:>10.2f}{seconds - base:>24.2f}")


if __name__ == "__main__":
    main()
