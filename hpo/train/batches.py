"""Training batches served by slicing in-memory tensors: no per-sample collation, no worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["TensorBatches"]


class TensorBatches:
    """Iterate over ``(x, y)`` minibatches of tensors already in memory.

    Each pass is one epoch: with ``shuffle`` the rows are permuted by a generator seeded once, so epoch ``k`` of a
    run is the same every time the run is repeated. The last batch may be smaller than ``batch_size``.

    Args:
        x: features, shape ``(n, f)``.
        y: targets, shape ``(n,)``.
        batch_size: rows per batch.
        shuffle: permute rows at the start of every epoch.
        seed: seed of the permutation generator.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of rows, got {len(x)} and {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.x, self.y
        if self.shuffle:
            order = torch.randperm(len(x), generator=self._generator).to(x.device)
            x, y = x[order], y[order]
        for start in range(0, len(x), self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]
