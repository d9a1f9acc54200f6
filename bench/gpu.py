"""Figures 1 and 11 on a CUDA GPU (`python -m bench.gpu`).

1. One hpo trial vs the plain PyTorch loop, both on the GPU.
11. Population training: trials per GPU-minute with ``training.population`` P = 1, 16, 64 and 256 (small MLPs on
    20k synthetic rows, 4 epochs, no pruning; P trials per population, at least 16 trials per run), with the best
    value each reached and the time spent training.

Under five minutes on one GPU. The trials run with ``accelerator: auto`` (which picks the GPU) and keep the data on
the device. Writes docs/benchmarks-gpu.md (or --out). ``--smoke`` runs figure 11 tiny on the CPU (a check of the
script itself, not a measurement).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import optuna
import pytorch_lightning as pl
import torch

from bench import training_cost
from bench.common import environment, experiment
from bench.population import NARROW_PARAMS, _default_experiment, timed_run
from hpo.train.device import training_device

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-gpu.md"


class _FitClock:
    """Seconds spent inside ``pl.Trainer.fit`` (the training: one trial's, or a whole population's) while active."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> _FitClock:
        self._fit = pl.Trainer.fit
        clock = self

        def timed_fit(trainer: pl.Trainer, *args: object, **kwargs: object) -> None:
            start = time.perf_counter()
            try:
                clock._fit(trainer, *args, **kwargs)  # type: ignore[arg-type]
            finally:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.seconds += time.perf_counter() - start

        pl.Trainer.fit = timed_fit  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        pl.Trainer.fit = self._fit  # type: ignore[method-assign]


def population_rates(
    accelerator: str, populations: tuple[int, ...], rows: int, epochs: int, rounds: int = 1
) -> list[tuple[int, int, float, float, float]]:
    """(P, trials, seconds, best value, seconds training) of a study of small MLPs run with each population size P:
    the medians of ``rounds`` rounds (each round runs every P in turn). Prints each run, with the share spent
    training (inside Lightning's ``fit``) and the rest per trial (ask, sampling, tell, logging, storage)."""
    runs: dict[int, list[tuple[float, float, float]]] = {p: [] for p in populations}
    for _ in range(rounds):
        for population in populations:
            trials = max(16, population)
            doc = {
                "study": {"name": f"gpu{population}", "n_trials": trials, "sampler": {"name": "tpe", "seed": 0}},
                "training": {
                    "max_epochs": epochs,
                    "population": population,
                    "batch_size": 256,
                    "accelerator": accelerator,
                },
                "data": {"split_seed": 0},
                "params": NARROW_PARAMS,
            }
            doc["study"]["pruner"] = {"name": "none"}
            with _FitClock() as clock:
                seconds, best, _ = timed_run(experiment(doc, rows))
            runs[population].append((seconds, best, clock.seconds))
            print(
                f"  P={population}: {trials} trials in {seconds:.1f} s, best {best:.4f}; training {clock.seconds:.1f} "
                f"s, the rest {(seconds - clock.seconds) * 1000 / trials:.0f} ms per trial",
                flush=True,
            )
    return [
        (
            p,
            max(16, p),
            statistics.median(r[0] for r in runs[p]),
            statistics.median(r[1] for r in runs[p]),
            statistics.median(r[2] for r in runs[p]),
        )
        for p in populations
    ]


def default_study_rates(populations: tuple[int, ...], trials: int, seeds: tuple[int, ...]) -> str:
    """Figure 11 on the embedded default study (search_spaces/default.yaml: its mixed space, pruner and 30 epochs)
    trained on the GPU, runs of each P interleaved per seed: a table row with trials per minute and best values."""
    runs: dict[int, list[tuple[float, float]]] = {p: [] for p in populations}
    timed_run(_default_experiment(populations[-1], populations[-1], 999, accelerator="auto"))  # warm-up
    for seed in seeds:
        for population in populations:
            seconds, best, _ = timed_run(_default_experiment(population, trials, seed, accelerator="auto"))
            runs[population].append((seconds, best))
            print(f"  default study P={population} seed={seed}: {seconds:.1f} s, best {best:.4f}", flush=True)
    per_minute = {p: 60 * trials / statistics.median(r[0] for r in runs[p]) for p in populations}
    measured = ", ".join(
        f"P={p}: {per_minute[p]:.0f}/min (best {statistics.mean(r[1] for r in runs[p]):.4f})" for p in populations
    )
    top = max(per_minute, key=lambda p: per_minute[p])
    return (
        f"| 11. trials per GPU-minute, the embedded default study ({trials} trials, {len(seeds)} seeds; its mixed "
        f"widths, depths, embeddings and pruner) | {measured} | P={top}: "
        f"{per_minute[top] / per_minute[min(per_minute)]:.1f}x P=1 | reported |"
    )


def _population_row(rates: list[tuple[int, int, float, float, float]]) -> str:
    per_minute = {p: 60 * trials / seconds for p, trials, seconds, _, _ in rates}
    measured = ", ".join(
        f"P={p}: {per_minute[p]:.0f}/min (best {best:.4f}, training {training:.1f} of {seconds:.1f} s)"
        for p, _, seconds, best, training in rates
    )
    top = max(per_minute, key=lambda p: per_minute[p])
    return (
        "| 11. trials per GPU-minute, small MLPs on 20k rows (4 epochs, batch 256) | "
        f"{measured} | P={top}: {per_minute[top] / per_minute[min(per_minute)]:.1f}x P=1 | >= 15x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="the Markdown file to write")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (medians are reported)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each population size (medians are reported)")
    parser.add_argument("--smoke", action="store_true", help="figure 11 tiny, on the CPU: checks the script only")
    args = parser.parse_args()
    if args.smoke:
        print(_population_row(population_rates("cpu", (1, 16), 2000, 1)))
        return
    if not torch.cuda.is_available():
        sys.exit(f"bench.gpu: torch {torch.__version__} sees no CUDA GPU here; run it on a machine with one")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert training_device("auto").type == "cuda"
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    for label, n, epochs, batch in training_cost.CASES:
        result = training_cost.measure(n, epochs, batch, repeats=args.repeats, accelerator="auto")
        rows.append(
            f"| 1. trial vs plain loop on the GPU: {label} | hpo {result['hpo_s']:.3f} s, plain "
            f"{result['plain_s']:.3f} s | {result['ratio']:.2f} | <= 1.5 |"
        )
        print(rows[-1], flush=True)
    rows.append(_population_row(population_rates("auto", (1, 16, 64, 256), 20_000, 4, rounds=args.rounds)))
    print(rows[-1], flush=True)
    rows.append(default_study_rates((1, 8, 16), 64, (0, 1)))
    print(rows[-1], flush=True)
    lines = [
        "# Benchmarks on a GPU",
        "",
        f"Written by `python -m bench.gpu` on {dt.date.today()}, in {time.perf_counter() - started:.0f} s. GPU: "
        f"{torch.cuda.get_device_name(0)}. Machine: {environment()}.",
        "",
        f"Medians of {args.repeats} (figure 1) and {args.rounds} (figure 11) runs; the trials train with "
        "`accelerator: auto`, which picked the GPU, and their data stays on the device. Figure 11 runs each population "
        "size in turn in every round; 'training' is the time inside Lightning's `fit`, the rest is what every trial "
        "costs around it (ask, sampling, tell, TensorBoard runs, the study's storage).",
        "",
        "| figure | measured | result | target |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
