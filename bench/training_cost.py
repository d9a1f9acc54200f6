"""Figure 1: one hpo trial at fixed hyperparameters vs a plain PyTorch loop doing the same work."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import torch
from torch.utils.tensorboard import SummaryWriter

from bench.common import experiment, median_time, prepared
from hpo.data.loading import PreparedData
from hpo.metrics import compute_metrics, hp_name
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.train.batches import TensorBatches
from hpo.train.device import training_device
from hpo.train.objective import Objective

PARAMS = {"lr": 1e-3, "n_layers": 2, "hidden_size": 64, "optimizer": "adam", "dropout": 0.0}


_CPU = torch.device("cpu")


def plain_loop(data: PreparedData, epochs: int, batch_size: int, seed: int, device: torch.device = _CPU) -> None:
    """What a careful hand-written loop does: same model, optimizer, slicing, metrics and TensorBoard scalars.

    On a GPU the data is copied to it once (outside the timing, as hpo does once per worker process).
    """
    torch.manual_seed(seed)
    model = MLP(data.n_features, PARAMS["n_layers"], PARAMS["hidden_size"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=PARAMS["lr"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    writer = SummaryWriter(tempfile.mkdtemp())
    x_train, y_train, x_val, y_val = _on(data, device)
    batches = TensorBatches(x_train, y_train, batch_size, shuffle=True, seed=seed)
    for epoch in range(epochs):
        model.train()
        total, rows = torch.zeros((), device=device), 0
        for x, y in batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            rows += len(y)
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in compute_metrics(model(x_val), y_val).items()}
        for name, value in metrics.items():
            writer.add_scalar(name, value, epoch)
            writer.add_scalar(hp_name(name), value, epoch)
        writer.add_scalar("train/loss", float(total) / rows, epoch)
    writer.close()


_COPIES: dict[tuple[int, str], tuple[torch.Tensor, ...]] = {}


def _on(data: PreparedData, device: torch.device) -> tuple[torch.Tensor, ...]:
    key = (id(data), str(device))
    if key not in _COPIES:
        _COPIES[key] = tuple(
            torch.from_numpy(a).to(device) for a in (data.x_train, data.y_train, data.x_val, data.y_val)
        )
    return _COPIES[key]


def measure(rows: int | None, epochs: int, batch_size: int, repeats: int, accelerator: str = "cpu") -> dict[str, float]:
    """Median seconds of one hpo trial and of the plain loop (the same work), on ``accelerator``."""
    training = {"max_epochs": epochs, "batch_size": batch_size, "accelerator": accelerator}
    exp = experiment({"training": training, "study": {"pruner": "none"}}, rows)
    data = prepared(exp)
    objective = Objective(exp, data, StudyPaths(Path(tempfile.mkdtemp()), "bench"))
    device = training_device(accelerator)
    counter = iter(range(10**6))
    hpo_s = median_time(lambda: objective(optuna.trial.FixedTrial(PARAMS, number=next(counter))), repeats)
    plain_s = median_time(lambda: plain_loop(data, epochs, batch_size, seed=0, device=device), repeats)
    return {"hpo_s": hpo_s, "plain_s": plain_s, "ratio": hpo_s / plain_s}


CASES = (
    ("embedded (569 rows), 30 epochs, batch 64", None, 30, 64),
    ("synthetic 200k rows, 3 epochs, batch 256", 200_000, 3, 256),
)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(1)
    rows = []
    for label, n, epochs, batch in CASES:
        result = measure(n, epochs, batch, repeats=3 if quick else 5)
        rows.append(
            (
                f"1. trial vs plain loop: {label}",
                f"hpo {result['hpo_s']:.3f} s, plain {result['plain_s']:.3f} s",
                f"{result['ratio']:.2f}",
                "<= 1.5",
            )
        )
    return rows
