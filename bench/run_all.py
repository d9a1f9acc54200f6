"""Run every benchmark and write docs/benchmarks.md: `python -m bench.run_all [--quick]` (or `make bench`)."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import optuna

from bench import (
    light_commands,
    loader,
    memory,
    population,
    preprocessing,
    recipe,
    search_quality,
    study_costs,
    training_cost,
    workers,
)
from bench.common import environment

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


NOTES = [
    "## How to read it",
    "",
    "- Figure 1 on a CUDA GPU: `python -m bench.gpu` writes [benchmarks-gpu.md](benchmarks-gpu.md).",
    "- 3a is the median CPU time per trial of 24 trials right after 1000 (10,000) earlier ones (written "
    "straight into the SQLite file; they score better than the measured trials, so none of these is "
    "published as a new best, which at trial 10,000 is rare anyway). It covers everything `hpo run` does "
    "for a trial (budget check, ask, the sampler, storage writes, Trainer and logger set-up, tell, the "
    "best-trial checks, progress); CPU time, because on these shared machines wall time mostly measures "
    "the other processes (it still varies by about 10% from run to run). Beside it, Optuna alone doing "
    "ask, the same eight suggestions and tell on a storage opened as hpo opens it (write-ahead log, "
    "`synchronous=NORMAL`; the earlier figure used a plain SQLite URL, whose fsync per commit made "
    "Optuna's part look 60 ms dearer and hpo's own part 9 ms); hpo's own part is the difference. TPE over "
    "the whole history costs Optuna 90 ms at trial 1000 and 300 ms at 10,000; `max_history` (default "
    "1000; hpo.study.samplers) caps what it fits, and its cost stays at about 100 ms. hpo counts trials by "
    "state with one `GROUP BY` query and reads the best trial again only when a "
    "trial completed (hpo/study/access.py): with that and the window, a trial at 10,000 costs about what "
    "one at 1000 does. The targets cannot be met with Optuna's RDB "
    "storage and Lightning: Optuna alone with a random sampler (no model at all) costs about 33 ms at "
    "trial 10,000 (a commit per parameter, and two passes over every trial per ask: looking for queued "
    "trials, and the snapshot TPE reads), TPE on the smallest window (250 trials) adds about 40 ms, most "
    "of it Optuna computing its integer parameters' kernel masses one value at a time in Python; Optuna's "
    "JournalStorage (file) measured for comparison: 12 ms with a random sampler, 72 ms with the default "
    "window. hpo's own part at 10,000 is about 80 ms: Lightning's Trainer and the "
    "one-epoch fit about 30 ms, twelve user attributes written as twelve commits about 20 ms, the rest "
    "the per-trial checks (stale trials, budget, best).",
    "- 3b compares a trial with the plain loop doing the same training, run right after each trial so that both see "
    "the same machine load; the trials use the default search space's training settings (30 epochs, batch 64).",
    "- 6 and 7 run on a task where the hyperparameters matter (on the embedded data almost every configuration is "
    "within 0.5% of the best): the label depends on products and curvature of five of twenty columns. The default "
    "pruner and sampler (hpo/config/algorithms.py) were chosen from these figures.",
    "- 7b: a window (`study.sampler.max_history`) changes what TPE sees only after `max_history + 25` "
    "trials (below, it proposes exactly what Optuna's TPE does, which tests/study/test_samplers.py "
    "checks), so figure 7's 20-trial studies cannot show its effect, and training hundreds of trials per "
    "seed does not fit a benchmark run; 7b therefore scores a surrogate of training "
    "(`bench.search_quality.surrogate_score`: a narrow learning rate that depends on the optimizer, "
    "dropout that must grow with the width, noise of 0.002) on figure 7's search space, 500 trials with "
    "the smallest window (225 trials, so it binds from trial 251) against the whole history. The window "
    'keeps the 25 best trials however old, so TPE\'s "good" group is the one the whole history gives; only '
    "its model of the other trials is fitted on recent ones.",
    "- M: the 495 MB are almost all libraries every worker imports, measured one layer at a time in a "
    "fresh interpreter: torch, then torch._dynamo and sympy (imported by `lightning_fabric.wrappers`), "
    "torchmetrics and scipy (imported by Lightning), matplotlib (imported by torchmetrics whenever it is "
    "installed), pandas (hpo's CSV reading); hpo's own modules are 13 MB. TensorBoard writers are closed "
    "after each trial and Optuna's trial cache is small, so 180 more trials add 2.4 MB. None of the big "
    "imports can be dropped from hpo: Lightning pulls them in.",
    "- 11 (population training, `training.population`): on these 2-core CPUs a trial of a small MLP spends "
    "little of its time training; per epoch each member still costs one Optuna report (a storage write, about "
    "5 ms), its TensorBoard scalars (about 2 ms) and, per trial, ask, tell, user attributes and the files of a new "
    "best, none of which batching removes (a profile of 11b: training 1.4 s of 18 s for 32 trials). The default "
    "study mixes embeddings, depths 1-3 and widths 32-256, so its members fall into several groups (padding a "
    "narrow MLP to a wide one costs more than it saves on a CPU), and the 20k-row task is compute-bound: "
    "population training does not pay there, hence the default of 1. A population also gives up some of "
    "TPE's and the pruner's sequential information (no member learns from another). `python -m bench.gpu` "
    "measures it on a GPU, where a small MLP leaves the device idle.",
    "",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    rows = []
    for module in (
        training_cost,
        loader,
        study_costs,
        recipe,
        workers,
        search_quality,
        memory,
        light_commands,
        preprocessing,
        population,
    ):
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
