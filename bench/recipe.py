"""Figure 4: time to a target AUROC, hpo's defaults vs the usual Optuna + Lightning recipe, same space and budget.

The reference objective is written the way the Optuna + Lightning examples write it: a per-sample ``DataLoader``
over a ``TensorDataset``, a default ``Trainer`` (checkpointing, model summary, sanity check, CSV logger), metrics
through ``self.log``, no pruning, one process. Both read the same synthetic CSV through hpo's loader and use the
same search space, budget and seeds.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import binary_auroc

from bench.common import experiment, prepared
from bench.study_costs import DEFAULT_PARAMS
from hpo.model import MLP
from hpo.search.run import TrialReport, run_study

ROWS, TRIALS, EPOCHS = 20_000, 8, 4


class ReferenceModule(pl.LightningModule):
    def __init__(self, n_features: int, params: dict) -> None:
        super().__init__()
        self.params = params
        self.model = MLP(n_features, params["n_layers"], params["hidden_size"], params["dropout"])
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self.model(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_auroc", binary_auroc(torch.sigmoid(self.model(x)), y.long()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.params
        if p["optimizer"] == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=p["lr"], weight_decay=p["weight_decay"], momentum=p["momentum"]
            )
        cls = torch.optim.Adam if p["optimizer"] == "adam" else torch.optim.AdamW
        return cls(self.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])


@contextlib.contextmanager
def as_shipped() -> Iterator[None]:
    """Optuna's and Lightning's functions as a user's own process has them: hpo's process-wide speed-ups (TPE's
    vectorized log(Phi), Lightning's callback plug-ins looked up once), installed once hpo has built a sampler or a
    Trainer in this process, are undone for the duration, so the recipe is measured as it runs without hpo."""
    from lightning_fabric.utilities import registry
    from optuna.samplers._tpe import _truncnorm

    from hpo.study.samplers import OPTUNA_LOG_NDTR

    saved = (_truncnorm._log_ndtr, registry.entry_points)
    _truncnorm._log_ndtr = OPTUNA_LOG_NDTR or saved[0]
    registry.entry_points = importlib.metadata.entry_points
    try:
        yield
    finally:
        _truncnorm._log_ndtr, registry.entry_points = saved


def reference_curve(seed: int) -> list[tuple[float, float]]:
    """(seconds since start, best AUROC so far) after each trial of the reference recipe (run :func:`as_shipped`)."""
    exp = experiment({"params": DEFAULT_PARAMS, "data": {"split_seed": 0}}, ROWS)
    data = prepared(exp)
    train = TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train))
    val = TensorDataset(torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))
    root = tempfile.mkdtemp()

    def objective(trial: optuna.Trial) -> float:
        params = {"weight_decay": 0.0, "momentum": 0.9, **exp.space.sample(trial)}
        # Seeded per trial, as hpo seeds its trials: otherwise the initial weights depend on whatever ran before in
        # this process (figure 11c runs other studies first), and so does the time to target.
        pl.seed_everything(seed + trial.number, verbose=False)
        module = ReferenceModule(data.n_features, params)
        trainer = pl.Trainer(
            max_epochs=EPOCHS, accelerator="auto", devices=1, default_root_dir=root, enable_progress_bar=False
        )
        trainer.fit(
            module,
            DataLoader(train, batch_size=params["batch_size"], shuffle=True),
            DataLoader(val, batch_size=params["batch_size"]),
        )
        return float(trainer.callback_metrics["val_auroc"])

    curve: list[tuple[float, float]] = []
    start = time.perf_counter()
    with as_shipped():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(
            objective,
            n_trials=TRIALS,
            callbacks=[lambda s, t: curve.append((time.perf_counter() - start, s.best_value))],
        )
    return curve


def hpo_curve(seed: int) -> list[tuple[float, float]]:
    doc = {
        "study": {"name": "recipe", "n_trials": TRIALS, "sampler": {"name": "tpe", "seed": seed}},
        "training": {"max_epochs": EPOCHS},
        "data": {"split_seed": 0},
        "params": DEFAULT_PARAMS,
    }
    curve: list[tuple[float, float]] = []
    start = time.perf_counter()

    def record(report: TrialReport) -> None:
        if report.best_value is not None:
            curve.append((time.perf_counter() - start, report.best_value))

    run_study(experiment(doc, ROWS), root=Path(tempfile.mkdtemp()), on_trial_end=record)
    return curve


def _time_to(curve: list[tuple[float, float]], target: float) -> float:
    return next((t for t, best in curve if best >= target), float("inf"))


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(2)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    seed = 0
    ours = hpo_curve(seed)
    reference = reference_curve(seed)
    target = min(ours[-1][1], reference[-1][1])
    t_ours, t_ref = _time_to(ours, target), _time_to(reference, target)
    return [
        (
            f"4. time to AUROC {target:.4f} (best both reach), 20k rows, {TRIALS} trials x {EPOCHS} epochs",
            f"hpo {t_ours:.1f} s vs usual recipe {t_ref:.1f} s (whole budget: {ours[-1][0]:.0f} s vs "
            f"{reference[-1][0]:.0f} s)",
            f"{t_ref / t_ours:.1f}x faster",
            ">= 4x",
        )
    ]
