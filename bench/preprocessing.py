"""Preprocessing of raw tabular data: hpo's Preprocessor vs a scikit-learn ColumnTransformer doing the same job.

`python -m bench.preprocessing [--rows N]` (default 1,000,000) builds a mixed frame as ``pd.read_csv`` returns it:
40 numeric columns (normal, log-normal, integer counts) and 10 text columns of 3 to 2000 levels with Zipf-like
frequencies, 5% blanks everywhere. Both sides fit on it and transform it, one after the other in this run:

- hpo: ``infer_columns`` + ``fit_preprocessor`` (standard scaling, median imputation with missing indicators, one-hot
  of levels seen 5+ times capped at 32 + ``<other>``), then ``Preprocessor.transform`` (dense float32).
- scikit-learn: ``SimpleImputer(median, add_indicator=True)`` + ``StandardScaler`` for numbers,
  ``SimpleImputer(constant)`` + ``OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5,
  max_categories=33)`` for text, dense output.

Times are wall seconds of the second call of each step (the first warms up memory); peak memory is the most memory
traced by tracemalloc during a separate transform call, the output included.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bench.common import environment
from hpo.data.preprocessing import (
    BLANK_LEVEL,
    DEFAULT_MAX_ONE_HOT,
    DEFAULT_MIN_LEVEL_COUNT,
    fit_preprocessor,
    infer_columns,
)

LEVELS = (3, 5, 10, 30, 100, 200, 500, 1000, 1500, 2000)
N_NUMERIC = 40
BLANK_FRACTION = 0.05


def synthetic_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """40 numeric and 10 text columns with 5% blanks, typed as ``pd.read_csv`` types them (float64 and str)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        kind = i % 3
        if kind == 0:
            values = rng.normal(loc=i, scale=1 + i, size=rows)
        elif kind == 1:
            values = rng.lognormal(mean=1.0, sigma=1.5, size=rows)
        else:
            values = rng.poisson(lam=3 + i, size=rows).astype(np.float64)
        values[rng.random(rows) < BLANK_FRACTION] = np.nan
        columns[f"x{i}"] = values
    for i, n_levels in enumerate(LEVELS):
        names = np.array([f"c{i}_level{j}" for j in range(n_levels)], dtype=object)
        weights = 1.0 / np.arange(1, n_levels + 1) ** 1.1
        text = names[rng.choice(n_levels, size=rows, p=weights / weights.sum())]
        text[rng.random(rows) < BLANK_FRACTION] = np.nan
        columns[f"cat{i}"] = pd.array(text, dtype="str")
    return pd.DataFrame(columns)


def sklearn_transformer(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """The same job in scikit-learn, producing a dense array."""
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=BLANK_LEVEL),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        min_frequency=DEFAULT_MIN_LEVEL_COUNT,
                        max_categories=DEFAULT_MAX_ONE_HOT + 1,
                        sparse_output=False,
                        dtype=np.float32,
                    ),
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def peak_memory(func: Callable[[], Any]) -> int:
    """The most bytes traced while ``func`` runs (its result included)."""
    tracemalloc.start()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def measure(rows: int) -> dict[str, dict[str, float]]:
    """Fit and transform times, peak memory and output size of both sides on a frame of ``rows`` rows."""
    frame = synthetic_frame(rows)
    numeric = [c for c in frame.columns if c.startswith("x")]
    categorical = [c for c in frame.columns if c.startswith("cat")]

    def ours_fit() -> Any:
        specs = infer_columns(frame, features=list(frame.columns), where="bench")
        return fit_preprocessor(frame, specs)

    def theirs_fit() -> Any:
        return sklearn_transformer(numeric, categorical).fit(frame)

    def ours_apply(model: Any) -> np.ndarray:
        return model.transform(frame)[0]

    def theirs_apply(model: Any) -> np.ndarray:
        return model.transform(frame)

    results: dict[str, dict[str, float]] = {}
    for side, fit, apply in (("hpo", ours_fit, ours_apply), ("scikit-learn", theirs_fit, theirs_apply)):
        # a first call of each step, untimed: on a virtual machine the first touch of fresh memory can cost more than
        # the work itself, and the first side would pay it for both
        model = fit()
        del model
        model, fit_s = timed(fit)
        apply(model)
        out, transform_s = timed(partial(apply, model))
        results[side] = {
            "fit_s": fit_s,
            "transform_s": transform_s,
            "outputs": out.shape[1],
            "output_bytes": out.nbytes,
            "finite": bool(np.isfinite(out).all()),
        }
        del out
        results[side]["peak_bytes"] = peak_memory(partial(apply, model))
    return results


def table(rows: int, results: dict[str, dict[str, float]]) -> list[str]:
    ours, theirs = results["hpo"], results["scikit-learn"]
    lines = [
        "| step | hpo | scikit-learn | hpo speed-up |",
        "|---|---|---|---|",
    ]
    for step in ("fit", "transform"):
        a, b = ours[f"{step}_s"], theirs[f"{step}_s"]
        lines.append(
            f"| {step} | {a:.2f} s ({rows / a / 1e6:.2f} M rows/s) | {b:.2f} s ({rows / b / 1e6:.2f} M rows/s) | "
            f"{b / a:.1f}x |"
        )
    lines.append(
        f"| transform output | {ours['outputs']} columns, {ours['output_bytes'] / 2**30:.2f} GiB float32 | "
        f"{theirs['outputs']} columns, {theirs['output_bytes'] / 2**30:.2f} GiB float64 | |"
    )
    lines.append(
        f"| transform peak memory (tracemalloc) | {ours['peak_bytes'] / 2**30:.2f} GiB | "
        f"{theirs['peak_bytes'] / 2**30:.2f} GiB | {theirs['peak_bytes'] / ours['peak_bytes']:.1f}x less |"
    )
    return lines


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """Figure 9 of docs/benchmarks.md (``make bench``): 1M rows, or 100k with ``quick``."""
    rows = 100_000 if quick else 1_000_000
    ours, theirs = (measure(rows)[side] for side in ("hpo", "scikit-learn"))
    return [
        (
            f"9. preprocessing, {rows:,} rows x 50 mixed columns vs scikit-learn ColumnTransformer",
            f"fit {ours['fit_s']:.2f} s vs {theirs['fit_s']:.2f} s; transform {ours['transform_s']:.2f} s vs "
            f"{theirs['transform_s']:.2f} s; peak {ours['peak_bytes'] / 2**30:.2f} vs "
            f"{theirs['peak_bytes'] / 2**30:.2f} GiB",
            f"fit {theirs['fit_s'] / ours['fit_s']:.1f}x, transform {theirs['transform_s'] / ours['transform_s']:.1f}x",
            "not slower",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the synthetic frame")
    args = parser.parse_args()
    print(
        f"Machine: {environment()}; numpy {np.__version__}, pandas {pd.__version__}, scikit-learn {sklearn.__version__}"
    )
    print(
        f"Frame: {args.rows:,} rows x {N_NUMERIC} numeric + {len(LEVELS)} text columns ({min(LEVELS)}..{max(LEVELS)} "
        f"levels), {BLANK_FRACTION:.0%} blanks",
        flush=True,
    )
    results = measure(args.rows)
    print("\n".join(table(args.rows, results)))
    if not results["hpo"]["finite"]:
        raise SystemExit("bench.preprocessing: hpo's output is not finite")


if __name__ == "__main__":
    main()
