"""How the network trains: the ``LightningModule`` and the callbacks that report to Optuna and TensorBoard."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
import pytorch_lightning as pl
import torch
from torch import nn

from hpo.metrics import METRICS, compute_metrics, hp_name

__all__ = [
    "BestEpochCallback",
    "BinaryClassifier",
    "NonFiniteLossError",
    "OptunaPruningCallback",
    "fused_adam_applies",
]


class NonFiniteLossError(RuntimeError):
    """The training or validation loss became NaN or infinite."""


class BinaryClassifier(pl.LightningModule):
    """Trains a network that outputs logits with ``BCEWithLogitsLoss`` and validates it on the whole split.

    Lightning's fixed cost per training step (hooks, loops, logging bookkeeping) is as large as a whole step of a small
    MLP, so each Lightning step receives a chunk of rows (an epoch from :class:`~hpo.train.batches.TensorBatches`)
    and runs the optimizer over its ``batch_size`` slices with manual optimization: exactly the minibatches and
    optimizer steps of a plain loop, with Lightning's overhead paid once per chunk instead of once per minibatch.

    After each validation epoch, :attr:`last_metrics` holds every metric of :data:`hpo.metrics.METRICS` as a float,
    and the logger (if any) receives them as ``val/...`` and ``hp/...`` scalars at ``step = epoch``.

    Args:
        model: the network; ``model(x)`` returns logits of shape ``(n,)``.
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
        lr: learning rate.
        weight_decay: L2 penalty.
        momentum: momentum for ``sgd`` and ``rmsprop``.
        batch_size: rows per optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.batch_size = batch_size
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.optimizer_name = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.last_metrics: dict[str, float] = {}
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        # Plain lists: assigning tensors to module attributes goes through nn.Module.__setattr__, which is slow.
        self._train_losses: list[torch.Tensor] = []
        self._train_rows = [0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        # The plain torch optimizer, not Lightning's wrapper: its per-step hooks cost more than a small MLP's step,
        # and with 32-bit precision on one device they add nothing (no loss scaling, no gradient sync).
        optimizer = self.optimizers().optimizer  # type: ignore[union-attr]
        model, loss_fn, size = self.model, self.loss_fn, self.batch_size
        total = torch.zeros((), device=x.device)
        for start in range(0, len(x), size):
            xb, yb = x[start : start + size], y[start : start + size]
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(yb)
        if not torch.isfinite(total):
            raise NonFiniteLossError(
                f"training loss became {'NaN' if torch.isnan(total) else 'infinite'} at epoch {self.current_epoch}; "
                "the learning rate is probably too high"
            )
        self._train_losses.append(total)
        self._train_rows[0] += len(x)

    def on_train_epoch_start(self) -> None:
        self._train_losses.clear()
        self._train_rows[0] = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._val_logits.append(self.model(x))
        self._val_targets.append(y)

    def on_validation_epoch_end(self) -> None:
        logits = torch.cat(self._val_logits)
        targets = torch.cat(self._val_targets)
        self._val_logits.clear()
        self._val_targets.clear()
        if not torch.isfinite(logits).all():
            raise NonFiniteLossError(f"validation outputs became NaN or infinite at epoch {self.current_epoch}")
        metrics = compute_metrics(logits, targets)
        self.last_metrics = metrics
        if self.logger is not None and not self.trainer.sanity_checking:
            scalars = {**metrics, **{hp_name(name): value for name, value in metrics.items()}}
            if self._train_rows[0]:
                scalars["train/loss"] = float(sum(self._train_losses)) / self._train_rows[0]
            self.logger.log_metrics(scalars, step=self.current_epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        if self.optimizer_name in ("adam", "adamw"):
            cls = torch.optim.Adam if self.optimizer_name == "adam" else torch.optim.AdamW
            return cls(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused_adam_applies(params) or None)
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum)
        if self.optimizer_name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum)
        raise ValueError(f"optimizer must be adam, adamw, sgd or rmsprop, but got optimizer={self.optimizer_name!r}")


def fused_adam_applies(params: Sequence[torch.Tensor]) -> bool:
    """Whether Adam/AdamW can run as torch's fused kernel: float32/float64 weights on the CPU or a CUDA GPU.

    The fused kernel is the same arithmetic (weights agree to float rounding) in one call per step instead of
    about a dozen small tensor operations per weight: a small MLP's step is about 20% cheaper on a CPU (figure 4).
    Other devices and dtypes keep torch's default implementation."""
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params
    )


class OptunaPruningCallback(pl.Callback):
    """Report the monitored metric to an Optuna trial after every validation epoch and stop when it should prune.

    Our own small version of optuna-integration's callback, written against ``pytorch_lightning`` (that one imports
    the separate ``lightning`` package). After ``fit``, :attr:`pruned_epoch` is the epoch at which the pruner stopped
    the trial, or ``None``; the caller then raises :class:`optuna.TrialPruned`.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        if monitor not in METRICS:
            raise ValueError(f"monitor must be one of {list(METRICS)}, but got monitor={monitor!r}")
        self.trial = trial
        self.monitor = monitor
        self.pruned_epoch: int | None = None
        self.last_value: float | None = None  # the last value reported: Optuna's value of a pruned trial
        # Asking costs a read of the trial (and, for most pruners, of the study) from the storage every epoch: not
        # worth it when the study's pruner never prunes. The values are reported either way (learning curves).
        study = getattr(trial, "study", None)  # a FixedTrial has none
        self._asks = study is None or not isinstance(study.pruner, optuna.pruners.NopPruner)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = float(pl_module.last_metrics[self.monitor])  # type: ignore[index]
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        self.last_value = value
        if self._asks and self.trial.should_prune():
            self.pruned_epoch = epoch
            trainer.should_stop = True


class BestEpochCallback(pl.Callback):
    """Keep the weights of the best validation epoch, stop early if asked, and log ``hp_metric`` at the end.

    The value a trial returns to Optuna is :attr:`best_value`, and the weights it saves are :attr:`best_state`, so
    the two always describe the same model. At train end ``hp_metric`` is logged with exactly that value.

    Args:
        monitor: metric name in :data:`hpo.metrics.METRICS`.
        direction: ``maximize`` or ``minimize``.
        patience: stop after this many epochs without improvement (``None``: never).
    """

    def __init__(self, monitor: str, direction: str, patience: int | None = None) -> None:
        self.monitor = monitor
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.patience = patience
        self.best_value = math.nan
        self.best_epoch = -1
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] = {}
        self.epochs_trained = 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics: dict[str, Any] = pl_module.last_metrics  # type: ignore[assignment]
        value = metrics[self.monitor]
        epoch = trainer.current_epoch
        self.epochs_trained = epoch + 1
        if self.best_epoch < 0 or self.sign * value > self.sign * self.best_value:
            self.best_value = value
            self.best_epoch = epoch
            self.best_metrics = dict(metrics)
            model: nn.Module = pl_module.model  # type: ignore[assignment]
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif self.patience is not None and epoch - self.best_epoch >= self.patience:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.logger is not None and self.best_epoch >= 0:
            trainer.logger.log_metrics({"hp_metric": self.best_value}, step=self.epochs_trained)
