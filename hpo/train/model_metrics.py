"""Metrics of a trained network itself: its trainable parameters and its forward time on a fixed batch."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["LATENCY_BATCH_ROWS", "LATENCY_REPEATS", "count_parameters", "latency_ms", "measure_model"]

#: Rows of the fixed batch whose forward time is ``model/latency_ms``.
LATENCY_BATCH_ROWS = 256
#: Timed forward passes (the median is kept), after as many untimed warm-up passes.
LATENCY_REPEATS = 15


def count_parameters(model: nn.Module) -> int:
    """``model/params``: the number of trainable parameters (weights and biases)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def latency_ms(
    model: nn.Module, n_features: int, rows: int = LATENCY_BATCH_ROWS, repeats: int = LATENCY_REPEATS
) -> float:
    """``model/latency_ms``: the median time of one forward pass of ``rows`` rows on one CPU thread, in milliseconds.

    The batch is the same for every trial (seeded normal values), the model is in eval mode under
    ``torch.inference_mode()``, and ``repeats`` untimed passes warm it up first. The value depends on the machine
    and its load: compare it between trials of one run, not between machines.
    """
    x = torch.randn(rows, n_features, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    times = []
    threads = torch.get_num_threads()
    # One thread: a small MLP's forward pass split over several threads is dominated by waiting for them to be
    # scheduled, which on a busy machine swings the time between ~0.1 ms and ~10 ms for the same model.
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(repeats):
                model(x)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    return 1000.0 * statistics.median(times)


def measure_model(model: nn.Module, n_features: int, names: Iterable[str]) -> dict[str, float]:
    """The model metrics among ``names`` (``model/params``, ``model/latency_ms``); others are ignored.

    Args:
        model: the trained network, on the CPU.
        n_features: its input width.
        names: the metrics a study needs; only those are measured (latency takes a few milliseconds).
    """
    wanted = set(names)
    values: dict[str, float] = {}
    if "model/params" in wanted:
        values["model/params"] = float(count_parameters(model))
    if "model/latency_ms" in wanted:
        values["model/latency_ms"] = latency_ms(model, n_features)
    return values
