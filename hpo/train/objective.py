"""The Optuna objective: sample a trial's parameters, train the MLP with Lightning, report to TensorBoard."""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from hpo.config.constraints import feasible
from hpo.config.experiment import Experiment, TrainingSettings
from hpo.data.loading import DEFAULT_SCALING, PreparedData
from hpo.metrics import METRICS, hp_name
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.train.batches import TensorBatches
from hpo.train.device import training_device
from hpo.train.lightning_module import BestEpochCallback, BinaryClassifier, NonFiniteLossError, OptunaPruningCallback
from hpo.train.outcome import OutcomeCallback

__all__ = ["DEFAULTS", "Objective", "TrainedModel", "build_trainer", "resolve_params", "training_device"]

#: Values used for a hyperparameter that the search space leaves out (batch_size comes from ``training``).
DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "momentum": 0.9,
    "n_layers": 2,
    "hidden_size": 64,
    "dropout": 0.0,
    "activation": "relu",
    "preprocessing.numeric": DEFAULT_SCALING,
}
_MODEL_KEYS = ("n_layers", "hidden_size", "dropout", "activation")
_VAL_BATCH = 65536


@dataclass(frozen=True)
class TrainedModel:
    """The outcome of a completed trial, kept in memory until the study decides whether it is the best."""

    trial_number: int
    value: float
    params: dict[str, Any]
    model_kwargs: dict[str, Any]
    state_dict: dict[str, Any]
    metrics: dict[str, float]
    best_epoch: int
    values: tuple[float, ...] = ()  # every objective's value (multi-objective studies); () means (value,)
    constraints: dict[str, float] = field(default_factory=dict)  # constraint -> violation, <= 0 when satisfied

    @property
    def feasible(self) -> bool:
        """Whether the trial satisfies every constraint of the study (always, without constraints)."""
        return feasible(self.constraints)

    @property
    def scaling(self) -> str:
        """The numeric scaling its inputs were preprocessed with (``preprocessing.numeric``)."""
        return str(self.params.get("preprocessing.numeric", DEFAULT_SCALING))


def build_trainer(
    training: TrainingSettings, logger: Logger | bool, callbacks: list[pl.Callback], root_dir: Path
) -> pl.Trainer:
    """The Lightning ``Trainer`` of one trial: lean settings (no checkpoints, summary, progress bar or sanity check)
    and no SIGTERM handler of its own (the CLI finishes the running trial on the first SIGTERM, as on Ctrl-C)."""
    trainer = pl.Trainer(
        max_epochs=training.max_epochs,
        accelerator=training.accelerator,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        precision="32-true",  # BinaryClassifier steps the plain torch optimizer (no loss scaling)
        default_root_dir=str(root_dir),
    )
    trainer._signal_connector.register_signal_handlers = lambda: None  # type: ignore[method-assign]
    return trainer


def resolve_params(sampled: dict[str, Any], experiment: Experiment) -> dict[str, Any]:
    """Every hyperparameter of a trial: the sampled and fixed ones, then :data:`DEFAULTS` for the rest."""
    params = {**DEFAULTS, "batch_size": experiment.training.batch_size, **sampled}
    if params["optimizer"] not in ("sgd", "rmsprop"):
        params.pop("momentum")
    return params


class Objective:
    """Train one MLP per trial and return the study's metric at the best validation epoch.

    A trial whose loss becomes NaN or infinite is pruned with the reason in its ``pruned_reason`` user attribute, so
    the study goes on.

    Args:
        experiment: the validated search-space file.
        data: the prepared splits.
        paths: where the trial's TensorBoard run goes.
        on_complete: called with the still-running trial and its weights just before a completed trial returns
            (what must be attached to the trial itself, such as Optuna artifacts, has to happen then); it keeps
            the weights if it needs them after the trial.
    """

    def __init__(
        self,
        experiment: Experiment,
        data: PreparedData,
        paths: StudyPaths,
        on_complete: Callable[[optuna.Trial, TrainedModel], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.data = data
        self.paths = paths
        self.on_complete = on_complete
        self._tensors: dict[str, tuple[torch.Tensor, ...]] = {}

    def device_tensors(
        self, scaling: str = DEFAULT_SCALING
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_train, y_train, x_val, y_val)`` under ``scaling`` on the device the trials train on, copied there once
        per process and scaling.

        On a GPU the data then never crosses the bus again: every epoch's shuffle and slicing happen on the device.
        """
        if scaling not in self._tensors:
            device = training_device(self.experiment.training.accelerator)
            d, inputs = self.data, self.data.prepared(scaling)
            arrays = (inputs.x_train, d.y_train, inputs.x_val, d.y_val)
            self._tensors[scaling] = tuple(torch.from_numpy(a).to(device) for a in arrays)
        x_train, y_train, x_val, y_val = self._tensors[scaling]
        return x_train, y_train, x_val, y_val

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        exp = self.experiment
        params = resolve_params(exp.space.sample(trial), exp)
        trial.set_user_attr("params", params)
        # Which process on which host ran it: where its TensorBoard run and (if best) its weights were written.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        seed = exp.training.seed + trial.number
        pl.seed_everything(seed, workers=False, verbose=False)
        model_kwargs = {"n_features": self.data.n_features, **{k: params[k] for k in _MODEL_KEYS}}
        module = BinaryClassifier(
            MLP(**model_kwargs),
            params["optimizer"],
            params["lr"],
            params["weight_decay"],
            params.get("momentum", 0.0),
            params["batch_size"],
        )
        logger = TensorBoardLogger(
            save_dir=str(self.paths.tensorboard_dir),
            name="",
            version=self.paths.trial_version(trial.number),
            default_hp_metric=False,
        )
        declared = (*METRICS, *exp.study.model_metrics)
        logger.log_hyperparams(params, {"hp_metric": 0.0, **{hp_name(m): 0.0 for m in declared}})
        best = BestEpochCallback(exp.study.metric, exp.study.direction, exp.training.early_stopping_patience)
        pruning = OptunaPruningCallback(trial, exp.study.metric)
        outcome = OutcomeCallback(exp.study, best, model_kwargs)
        # Optuna does not prune multi-objective trials (Trial.report raises there): no pruning callback for them.
        callbacks = [best, outcome] if exp.study.multi_objective else [best, pruning, outcome]
        # One Lightning step per epoch: the module slices the shuffled epoch into batch_size minibatches itself.
        x_train, y_train, x_val, y_val = self.device_tensors(params["preprocessing.numeric"])
        train = TensorBatches(x_train, y_train, len(x_train), shuffle=True, seed=seed)
        val = TensorBatches(x_val, y_val, _VAL_BATCH, shuffle=False)
        try:
            with warnings.catch_warnings(), _QuietLightning():
                warnings.filterwarnings("ignore", module="pytorch_lightning")
                warnings.filterwarnings("ignore", module="lightning_fabric")
                trainer = build_trainer(exp.training, logger, callbacks, self.paths.study_dir)
                trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        except NonFiniteLossError as exc:
            trial.set_user_attr("pruned_reason", str(exc))
            logger.finalize("failed")
            raise optuna.TrialPruned(str(exc)) from None
        except SystemExit:
            # Lightning turns Ctrl-C inside fit into sys.exit(1); give Optuna an interrupt so it marks the trial failed.
            raise KeyboardInterrupt from None
        trial.set_user_attr("epochs_trained", best.epochs_trained)
        if best.best_epoch >= 0:
            trial.set_user_attr("best_epoch", best.best_epoch)
            trial.set_user_attr("metrics", best.best_metrics)
        if pruning.pruned_epoch is not None:
            reason = f"pruned by the {exp.study.pruner.name} pruner after epoch {pruning.pruned_epoch}"
            trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)
        result = outcome.result()
        if result.metrics != best.best_metrics:
            trial.set_user_attr("metrics", result.metrics)  # with the model metrics
        for constraint, violation in result.constraints.items():
            trial.set_constraint(constraint, violation)  # Optuna's samplers prefer feasible trials
        trained = TrainedModel(
            trial_number=trial.number,
            value=best.best_value,
            params=params,
            model_kwargs=model_kwargs,
            state_dict=best.best_state,
            metrics=result.metrics,
            best_epoch=best.best_epoch,
            values=result.values,
            constraints=result.constraints,
        )
        if self.on_complete is not None:
            self.on_complete(trial, trained)
        return list(result.values) if exp.study.multi_objective else best.best_value


class _QuietLightning:
    """Silence Lightning's start-up banners ("GPU available ...") for the duration of one fit."""

    _names = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")

    def __enter__(self) -> None:
        self._levels = [(logging.getLogger(n), logging.getLogger(n).level) for n in self._names]
        for log, _ in self._levels:
            log.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        for log, level in self._levels:
            log.setLevel(level)
