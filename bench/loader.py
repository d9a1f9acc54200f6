"""Figure 2: hpo's in-memory batch slicing vs DataLoader(TensorDataset(...), shuffle=True), loader alone."""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from hpo.train.batches import TensorBatches


def samples_per_second(loader: object, rows: int, epochs: int) -> float:
    start = time.perf_counter()
    for _ in range(epochs):
        for _x, _y in loader:  # type: ignore[attr-defined]
            pass
    return rows * epochs / (time.perf_counter() - start)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    rows = 200_000
    x, y = torch.randn(rows, 30), torch.randint(0, 2, (rows,)).float()
    ours = samples_per_second(TensorBatches(x, y, 256, shuffle=True), rows, 3)
    torch_loader = samples_per_second(DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True), rows, 1)
    return [
        (
            "2. loader, batch 256 (200k rows x 30)",
            f"hpo {ours / 1e6:.1f} M samples/s, DataLoader {torch_loader / 1e6:.2f} M samples/s",
            f"{ours / torch_loader:.0f}x",
            ">= 10x",
        )
    ]
