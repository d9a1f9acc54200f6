from __future__ import annotations

import torch

from hpo.train.batches import TensorBatches


def test_each_row_once_per_epoch_in_slices() -> None:
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(10, dtype=torch.float32)
    loader = TensorBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    epochs = []
    for _ in range(3):
        batches = list(loader)
        assert [len(b[0]) for b in batches] == [4, 4, 2]
        rows = torch.cat([b[1] for b in batches])
        assert sorted(rows.tolist()) == list(range(10))
        for bx, by in batches:
            assert torch.equal(bx.squeeze(1), by)  # features stay with their target
        epochs.append(rows.tolist())
    assert epochs[0] != epochs[1]  # a new permutation every epoch


def test_same_seed_same_order_and_no_shuffle_keeps_order() -> None:
    x = torch.randn(50, 3)
    y = torch.arange(50, dtype=torch.float32)
    a = [b[1].tolist() for b in TensorBatches(x, y, 8, shuffle=True, seed=5)]
    b = [b[1].tolist() for b in TensorBatches(x, y, 8, shuffle=True, seed=5)]
    assert a == b
    plain = torch.cat([b[1] for b in TensorBatches(x, y, 8, shuffle=False)])
    assert torch.equal(plain, y)


def test_batch_larger_than_data() -> None:
    x, y = torch.randn(3, 2), torch.zeros(3)
    batches = list(TensorBatches(x, y, 100, shuffle=True))
    assert len(batches) == 1 and len(batches[0][0]) == 3
