"""Figure 1 on a CUDA GPU: one hpo trial vs the plain PyTorch loop, both on the GPU (`python -m bench.gpu`).

Under three minutes on one GPU. The trial runs with ``accelerator: auto`` (which picks the GPU) and keeps the data
on the device; the plain loop does the same work on the same device. Writes docs/benchmarks-gpu.md (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import optuna
import torch

from bench import training_cost
from bench.common import environment
from hpo.train.device import training_device

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-gpu.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="the Markdown file to write")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (medians are reported)")
    args = parser.parse_args()
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
    lines = [
        "# Benchmarks on a GPU",
        "",
        f"Written by `python -m bench.gpu` on {dt.date.today()}, in {time.perf_counter() - started:.0f} s. GPU: "
        f"{torch.cuda.get_device_name(0)}. Machine: {environment()}.",
        "",
        "Medians of repeated runs; the trial trains with `accelerator: auto`, which picked the GPU, and its data "
        "stays on the device.",
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
