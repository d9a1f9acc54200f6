"""The Optuna objective: sample a trial's parameters, train the MLP with Lightning, report to TensorBoard."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from hpo.config.constraints import feasible
from hpo.config.experiment import Experiment, TrainingSettings
from hpo.data.loading import DEFAULT_SCALING, Fold, PreparedData
from hpo.metrics import METRICS, hp_name
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.study.retry import flush_trial_writes
from hpo.train.batches import TensorBatches
from hpo.train.device import training_device
from hpo.train.lightning_module import BestEpochCallback, BinaryClassifier, NonFiniteLossError, OptunaPruningCallback
from hpo.train.model_metrics import measure_model
from hpo.train.outcome import OutcomeCallback, trial_outcome
from hpo.train.pruning_reads import pruner_reads
from hpo.train.tensorboard import TrialLogger

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
    "model.embedding": "none",
    "model.embedding_dim": 8,
    "model.n_frequencies": 8,
    "model.frequency_sigma": 0.1,
}
_MODEL_KEYS = ("n_layers", "hidden_size", "dropout", "activation")
_VAL_BATCH = 65536
#: The MLP's embedding arguments and the hyperparameters they come from (used only with an embedding).
_EMBEDDING_KEYS = {
    "embedding_dim": "model.embedding_dim",
    "n_frequencies": "model.n_frequencies",
    "frequency_sigma": "model.frequency_sigma",
}


def _model_kwargs(params: dict[str, Any], data: PreparedData) -> dict[str, Any]:
    """The ``MLP`` arguments of a trial (plain JSON, saved in model.json). With an embedding, the inputs it embeds are
    the scaled numeric outputs of the preprocessing; their positions do not depend on the scaling."""
    kwargs = {"n_features": data.n_features, **{k: params[k] for k in _MODEL_KEYS}}
    embedding = params.get("model.embedding", "none")
    if embedding != "none":
        kwargs["embedding"] = embedding
        kwargs["embedded_inputs"] = list(data.prepared().preprocessor.scaled_numeric_outputs)
        kwargs |= {arg: params[name] for arg, name in _EMBEDDING_KEYS.items()}
    return kwargs


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
    _look_up_callback_factories_once()
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


@functools.cache
def _entry_points(**selection: str) -> Any:
    return importlib.metadata.entry_points(**selection)


def _look_up_callback_factories_once() -> None:
    """Make Lightning look up its callback plug-ins (``pytorch_lightning.callbacks_factory`` entry points) once per
    process instead of in every ``Trainer``: the lookup reads the metadata of every installed package, 5 ms of each
    trial (figure 3a of docs/benchmarks.md). The plug-ins found are still called for every Trainer, so each gets its
    own callbacks; a plug-in installed while a study runs is seen by the next run. Installed only over the function
    it was written against (``importlib.metadata.entry_points``, as Lightning imports it)."""
    from lightning_fabric.utilities import registry

    if getattr(registry, "entry_points", None) is importlib.metadata.entry_points:
        registry.entry_points = _entry_points  # type: ignore[assignment]


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
        on_complete: called with the still-running trial, its weights and the weights of the other completed
            members of its population (none for a trial trained alone) just before a completed trial returns (what
            must be attached to the trial itself, such as Optuna artifacts, has to happen then); it keeps the
            weights if it needs them after the trial.
    """

    def __init__(
        self,
        experiment: Experiment,
        data: PreparedData,
        paths: StudyPaths,
        on_complete: Callable[[optuna.Trial, TrainedModel, Sequence[TrainedModel]], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.data = data
        self.paths = paths
        self.on_complete = on_complete
        self._tensors: dict[tuple[str, Fold], tuple[torch.Tensor, ...]] = {}

    def device_tensors(
        self, scaling: str = DEFAULT_SCALING, fold: Fold = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_train, y_train, x_val, y_val)`` under ``scaling`` for ``fold``'s split, on the device the trials train
        on, copied there once per process, scaling and fold.

        On a GPU the data then never crosses the bus again: every epoch's shuffle and slicing happen on the device.
        """
        key = (scaling, fold)
        if key not in self._tensors:
            device = training_device(self.experiment.training.accelerator)
            inputs = self.data.prepared(scaling, fold)
            arrays = (inputs.x_train, inputs.y_train, inputs.x_val, inputs.y_val)
            self._tensors[key] = tuple(torch.from_numpy(a).to(device) for a in arrays)
        x_train, y_train, x_val, y_val = self._tensors[key]
        return x_train, y_train, x_val, y_val

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        exp = self.experiment
        params = resolve_params(exp.space.sample(trial), exp)
        trial.set_user_attr("params", params)
        # Which process on which host ran it: where its TensorBoard run and (if best) its weights were written.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        flush_trial_writes(trial)  # the parameters and these attributes, in one transaction
        model_kwargs = _model_kwargs(params, self.data)
        logger = TrialLogger(
            save_dir=str(self.paths.tensorboard_dir),
            name="",
            version=self.paths.trial_version(trial.number),
            default_hp_metric=False,
        )
        declared = ("hp_metric", *(hp_name(m) for m in (*METRICS, *exp.study.model_metrics)))
        _declare_hparams(logger, params, declared)
        folds = len(self.data.folds)
        if folds:
            return self._cross_validate(trial, params, model_kwargs, logger, folds)
        # Optuna does not prune multi-objective trials (Trial.report raises there): no pruning for them.
        pruning = None if exp.study.multi_objective else OptunaPruningCallback(trial, exp.study.metric)
        best, outcome = self._fit(trial, params, model_kwargs, logger, None, pruning)
        trial.set_user_attr("epochs_trained", best.epochs_trained)
        if best.best_epoch >= 0:
            trial.set_user_attr("best_epoch", best.best_epoch)
            _set_metric_attrs(trial, best.best_metrics)
        if pruning is not None and pruning.pruned_epoch is not None:
            reason = f"pruned by the {exp.study.pruner.name} pruner after epoch {pruning.pruned_epoch}"
            trial.set_user_attr("pruned_reason", reason)
            if pruning.last_value is not None:
                # Optuna's value of a pruned trial is its last reported value: TensorBoard's last hp_metric agrees.
                logger.log_metrics({"hp_metric": pruning.last_value}, step=best.epochs_trained + 1)
            raise optuna.TrialPruned(reason)
        result = outcome.result()
        if result.metrics != best.best_metrics:
            _set_metric_attrs(trial, result.metrics)  # with the model metrics
        return self._complete(trial, params, model_kwargs, best, result, best.best_value)

    def population(self, trials: Sequence[optuna.Trial]) -> dict[int, float | list[float] | optuna.TrialPruned]:
        """Train ``trials`` together as one population (:mod:`hpo.train.population`): each one samples its parameters,
        logs to its own TensorBoard run, reports every epoch to Optuna and is pruned on its own, exactly as
        :meth:`__call__` does for one trial. Returns each trial's value(s), or the ``TrialPruned`` to tell Optuna.

        Cross-validated studies train their trials one at a time (:meth:`__call__`).
        """
        from hpo.train.population import Member, PopulationTrainer

        exp = self.experiment
        by_number = {trial.number: trial for trial in trials}
        members: list[Member] = []
        loggers: dict[int, TensorBoardLogger] = {}
        declared = ("hp_metric", *(hp_name(m) for m in (*METRICS, *exp.study.model_metrics)))
        outcomes: dict[int, float | list[float] | optuna.TrialPruned] = {}
        for trial in trials:
            try:
                params = resolve_params(exp.space.sample(trial), exp)
            except optuna.exceptions.UpdateFinishedTrialError:
                outcomes[trial.number] = _finished_elsewhere(trial.number)  # see the end of this method
                continue
            trial.set_user_attr("params", params)
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
            trial.set_user_attr("population", len(trials))
            loggers[trial.number] = TrialLogger(
                save_dir=str(self.paths.tensorboard_dir),
                name="",
                version=self.paths.trial_version(trial.number),
                default_hp_metric=False,
            )
            _declare_hparams(loggers[trial.number], params, declared)
            model_kwargs = _model_kwargs(params, self.data)
            members.append(Member(trial.number, params, model_kwargs, exp.training.seed + trial.number))
        if trials:
            flush_trial_writes(trials[0])  # every member's parameters and attributes, in one transaction
        if not members:
            return outcomes
        splits = {s: self.device_tensors(s) for s in sorted({str(m.params["preprocessing.numeric"]) for m in members})}
        first = next(iter(splits.values()))
        # Optuna does not prune multi-objective trials (Trial.report raises there): no pruning for them.
        reports = not exp.study.multi_objective
        asks = reports and exp.study.pruner.name != "none"
        reads = pruner_reads(trials[0].study) if asks and trials else None

        def on_epoch(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
            for number, values in metrics.items():
                scalars = {**values, **{hp_name(m): v for m, v in values.items() if m in METRICS}}
                loggers[number].log_metrics(scalars, step=epoch)
                if reports:
                    by_number[number].report(values[exp.study.metric], step=epoch)
            if reads is None or not metrics:
                return set()
            # What Trial.should_prune does for each member, on one read of the study (hpo.train.pruning_reads).
            view = reads()
            return {n for n in metrics if view.prune(by_number[n])}

        trainer = PopulationTrainer(
            members,
            {s: t[0] for s, t in splits.items()},
            first[1],
            {s: t[2] for s, t in splits.items()},
            first[3],
            monitor=exp.study.metric,
            direction=exp.study.direction,
            patience=exp.training.early_stopping_patience,
            seed=exp.training.seed + min(by_number),
            on_epoch=on_epoch,
        )
        with warnings.catch_warnings(), _QuietLightning():
            warnings.filterwarnings("ignore", module="pytorch_lightning")
            warnings.filterwarnings("ignore", module="lightning_fabric")
            try:
                results = trainer.fit(build_trainer(exp.training, False, [], self.paths.study_dir))
            except SystemExit:
                raise KeyboardInterrupt from None  # Lightning turns Ctrl-C inside fit into sys.exit(1)
        completed: dict[int, TrainedModel] = {}
        for member in members:
            try:
                outcome = self._member_outcome(by_number[member.key], member, results[member.key], loggers)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Another worker found this member's heartbeat stale and failed it (this process was paused): its
                # weights cannot be attached any more. The worker's tell is skipped and its outcome dropped.
                outcome = _finished_elsewhere(member.key)
            if isinstance(outcome, tuple):
                outcomes[member.key], completed[member.key] = outcome
            else:
                outcomes[member.key] = outcome
        if self.on_complete is not None:
            # After every member's outcome is known: a member that a sibling beats need not be prepared as the best.
            for number, trained in completed.items():
                siblings = [t for n, t in completed.items() if n != number]
                try:
                    self.on_complete(by_number[number], trained, siblings)
                except optuna.exceptions.UpdateFinishedTrialError:
                    outcomes[number] = _finished_elsewhere(number)
        return outcomes

    def _member_outcome(
        self, trial: optuna.Trial, member: Any, result: Any, loggers: dict[int, TensorBoardLogger]
    ) -> optuna.TrialPruned | tuple[float | list[float], TrainedModel]:
        """What one population member tells Optuna (with its weights when it completed), with its user attributes and
        last TensorBoard points."""
        exp = self.experiment
        logger = loggers[trial.number]
        trial.set_user_attr("epochs_trained", result.epochs_trained)
        if result.best_epoch >= 0:
            trial.set_user_attr("best_epoch", result.best_epoch)
            _set_metric_attrs(trial, result.best_metrics)
        if result.dropped not in (None, "pruned", "early_stopped") or result.best_epoch < 0:
            reason = result.dropped or "no epoch was kept"
            trial.set_user_attr("pruned_reason", reason)
            logger.finalize("failed")
            return optuna.TrialPruned(reason)
        if result.dropped == "pruned":
            reason = f"pruned by the {exp.study.pruner.name} pruner after epoch {result.dropped_epoch}"
            trial.set_user_attr("pruned_reason", reason)
            # Optuna's value of a pruned trial is its last reported value: TensorBoard's last hp_metric agrees.
            last = result.last_metrics[exp.study.metric]
            logger.log_metrics({"hp_metric": last}, step=result.epochs_trained + 1)
            logger.finalize("success")
            return optuna.TrialPruned(reason)
        logger.log_metrics({"hp_metric": result.best_value}, step=result.epochs_trained)
        measured: dict[str, float] = {}
        if exp.study.model_metrics:
            model = MLP(**member.model_kwargs)
            model.load_state_dict(result.best_state)
            measured = measure_model(model, int(member.model_kwargs["n_features"]), exp.study.model_metrics)
        outcome = trial_outcome(exp.study, dict(result.best_metrics), measured)
        if exp.study.multi_objective or measured:
            objectives = [o.metric for o in exp.study.objectives] if exp.study.multi_objective else []
            names = {*measured, *objectives}
            scalars = {hp_name(n): outcome.metrics[n] for n in names if n in outcome.metrics}
            logger.log_metrics(scalars, step=result.epochs_trained)
        if outcome.metrics != result.best_metrics:
            _set_metric_attrs(trial, outcome.metrics)
        logger.finalize("success")
        for constraint, violation in outcome.constraints.items():
            trial.set_constraint(constraint, violation)
        trained = TrainedModel(
            trial_number=trial.number,
            value=result.best_value,
            params=member.params,
            model_kwargs=member.model_kwargs,
            state_dict=result.best_state,
            metrics=outcome.metrics,
            best_epoch=result.best_epoch,
            values=outcome.values,
            constraints=outcome.constraints,
        )
        return (list(outcome.values) if exp.study.multi_objective else result.best_value), trained

    def _fit(
        self,
        trial: optuna.Trial | optuna.trial.FixedTrial,
        params: dict[str, Any],
        model_kwargs: dict[str, Any],
        logger: Logger | bool,
        fold: Fold,
        pruning: OptunaPruningCallback | None,
    ) -> tuple[BestEpochCallback, OutcomeCallback]:
        """Train one model on ``fold``'s split; the callbacks keep its best epoch and its outcome."""
        exp = self.experiment
        seed = exp.training.seed + trial.number
        pl.seed_everything(seed, workers=False, verbose=False)
        module = _module(params, model_kwargs)
        best = BestEpochCallback(exp.study.metric, exp.study.direction, exp.training.early_stopping_patience)
        outcome = OutcomeCallback(exp.study, best, model_kwargs)
        callbacks: list[pl.Callback] = [best, outcome] if pruning is None else [best, pruning, outcome]
        # One Lightning step per epoch: the module slices the shuffled epoch into batch_size minibatches itself.
        x_train, y_train, x_val, y_val = self.device_tensors(params["preprocessing.numeric"], fold)
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
            if isinstance(logger, Logger):
                logger.finalize("failed")
            raise optuna.TrialPruned(str(exc)) from None
        except SystemExit:
            # Lightning turns Ctrl-C inside fit into sys.exit(1); give Optuna an interrupt so it marks the trial failed.
            raise KeyboardInterrupt from None
        return best, outcome

    def _cross_validate(
        self,
        trial: optuna.Trial,
        params: dict[str, Any],
        model_kwargs: dict[str, Any],
        logger: TensorBoardLogger,
        folds: int,
    ) -> float | list[float]:
        """Train one model per fold; the trial's value is the mean over folds, reported after each fold (step = fold)
        so that a pruner can stop a bad configuration early. Fold 0's model is the one kept (its validation rows are
        the study's ``val_rows``); every fold's value and metrics are user attributes and TensorBoard scalars."""
        exp = self.experiment
        values: list[float] = []
        fold_metrics: list[dict[str, float]] = []
        kept: tuple[BestEpochCallback, OutcomeCallback] | None = None
        for fold in range(folds):
            # Fold 0 logs its learning curves to the trial's TensorBoard run; later folds log only their summary.
            best, outcome = self._fit(trial, params, model_kwargs, logger if fold == 0 else False, fold, None)
            if best.best_epoch < 0:
                raise optuna.TrialPruned(f"fold {fold} kept no epoch")
            values.append(best.best_value)
            fold_metrics.append(dict(best.best_metrics))
            kept = kept or (best, outcome)
            mean = float(np.mean(values))
            logger.log_metrics({"cv/fold_value": best.best_value, "cv/running_mean": mean}, step=fold)
            trial.set_user_attr("cv_values", values)
            if not exp.study.multi_objective:
                trial.report(mean, step=fold)
                if exp.study.pruner.name != "none" and trial.should_prune():
                    reason = f"pruned by the {exp.study.pruner.name} pruner after fold {fold} (running mean {mean:.6g})"
                    trial.set_user_attr("pruned_reason", reason)
                    logger.log_metrics({"hp_metric": mean}, step=kept[0].epochs_trained + folds)
                    raise optuna.TrialPruned(reason)
        assert kept is not None
        best, outcome = kept
        means = {m: float(np.mean([fm[m] for fm in fold_metrics])) for m in fold_metrics[0]}
        trial.set_user_attr("cv_metrics", fold_metrics)
        _set_metric_attrs(trial, means)
        trial.set_user_attr("best_epoch", best.best_epoch)
        trial.set_user_attr("epochs_trained", best.epochs_trained)
        value = float(np.mean(values))
        # After fold 0's own hp_metric (logged at its last epoch): TensorBoard's last point is the CV mean.
        final_step = best.epochs_trained + folds
        logger.log_metrics({"hp_metric": value, **{hp_name(m): v for m, v in means.items()}}, step=final_step)
        result = outcome.result()
        result = replace(result, metrics={**result.metrics, **means}, values=(value, *result.values[1:]))
        return self._complete(trial, params, model_kwargs, best, result, value)

    def retrain(self, number: int, params: dict[str, Any], value: float) -> TrainedModel:
        """Train trial ``number``'s configuration again exactly as the trial did (its seed, its split or CV fold 0),
        without logging or pruning; for an ensemble of trials whose weights were not kept."""
        params = resolve_params(params, self.experiment)  # a trial's recorded params are complete; Optuna's are not
        model_kwargs = _model_kwargs(params, self.data)
        fold: Fold = 0 if self.data.folds else None
        best, outcome = self._fit(
            optuna.trial.FixedTrial(params, number=number), params, model_kwargs, False, fold, None
        )
        if best.best_epoch < 0:
            raise optuna.TrialPruned(f"trial {number} kept no epoch when trained again")
        result = outcome.result()
        return _trained(number, value, params, model_kwargs, best, result)

    def refit(self, number: int, params: dict[str, Any], epochs: int) -> dict[str, Any]:
        """Train trial ``number``'s configuration (its seed) on the training and validation rows together (all CV
        folds) for ``epochs`` epochs, and return the last epoch's ``state_dict``: no rows are left to choose by."""
        exp = self.experiment
        params = resolve_params(params, exp)
        pl.seed_everything(exp.training.seed + number, workers=False, verbose=False)
        model_kwargs = _model_kwargs(params, self.data)
        module = _module(params, model_kwargs)
        x_train, y_train, _, _ = self.device_tensors(params["preprocessing.numeric"], "all")
        train = TensorBatches(x_train, y_train, len(x_train), shuffle=True, seed=exp.training.seed + number)
        training = replace(exp.training, max_epochs=max(1, epochs), early_stopping_patience=None)
        with warnings.catch_warnings(), _QuietLightning():
            warnings.filterwarnings("ignore", module="pytorch_lightning")
            warnings.filterwarnings("ignore", module="lightning_fabric")
            trainer = build_trainer(training, False, [], self.paths.study_dir)
            trainer.fit(module, train_dataloaders=train)
        return {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}

    def _complete(
        self,
        trial: optuna.Trial,
        params: dict[str, Any],
        model_kwargs: dict[str, Any],
        best: BestEpochCallback,
        result: Any,
        value: float,
    ) -> float | list[float]:
        for constraint, violation in result.constraints.items():
            trial.set_constraint(constraint, violation)  # Optuna's samplers prefer feasible trials
        trained = _trained(trial.number, value, params, model_kwargs, best, result)
        if self.on_complete is not None:
            self.on_complete(trial, trained, ())
        return list(result.values) if self.experiment.study.multi_objective else value


def _module(params: dict[str, Any], model_kwargs: dict[str, Any]) -> BinaryClassifier:
    """A fresh LightningModule around a fresh MLP, with the trial's optimizer settings."""
    return BinaryClassifier(
        MLP(**model_kwargs),
        params["optimizer"],
        params["lr"],
        params["weight_decay"],
        params.get("momentum", 0.0),
        params["batch_size"],
    )


def _finished_elsewhere(number: int) -> optuna.TrialPruned:
    """The outcome of a population member that another worker marked failed meanwhile (never recorded)."""
    return optuna.TrialPruned(f"trial {number} was finished by another worker")


def _trained(
    number: int,
    value: float,
    params: dict[str, Any],
    model_kwargs: dict[str, Any],
    best: BestEpochCallback,
    result: Any,
) -> TrainedModel:
    """The :class:`TrainedModel` of trial ``number``: its best epoch's weights and its outcome."""
    return TrainedModel(
        trial_number=number,
        value=value,
        params=params,
        model_kwargs=model_kwargs,
        state_dict=best.best_state,
        metrics=result.metrics,
        best_epoch=best.best_epoch,
        values=result.values,
        constraints=result.constraints,
    )


def _set_metric_attrs(trial: optuna.Trial, metrics: dict[str, float]) -> None:
    """Each metric as its own user attribute (``val/auroc``...), so that optuna-dashboard can sort and filter by it,
    and all of them as ``metrics`` (one JSON object, as earlier versions wrote)."""
    trial.set_user_attr("metrics", metrics)
    for name, value in metrics.items():
        trial.set_user_attr(name, value)


def _declare_hparams(logger: TensorBoardLogger, params: dict[str, Any], metric_names: tuple[str, ...]) -> None:
    """Write the trial's hyperparameters and declare its ``hp_metric``/``hp/...`` metrics to TensorBoard's HParams
    plugin, without the placeholder point at step 0 that ``log_hyperparams(params, metrics)`` would log."""
    from torch.utils.tensorboard.summary import hparams

    logger.log_hyperparams(params)  # hparams.yaml; no metrics, so no scalars (default_hp_metric is off)
    clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
    exp, ssi, sei = hparams(clean, dict.fromkeys(metric_names, 0.0))
    writer = logger.experiment._get_file_writer()
    for summary in (exp, ssi, sei):
        writer.add_summary(summary, 0)


class _QuietLightning:
    """What one ``fit`` may do to the process, undone: Lightning's start-up banners ("GPU available ...") are silenced
    for its duration, and the SIGINT handler is put back afterwards. On Ctrl-C inside ``fit`` Lightning sets SIGINT
    to "ignore" for good (so that a second Ctrl-C cannot interrupt its shutdown): without this, a study run from
    Python (a notebook, a test) would ignore Ctrl-C from then on, and so would every process it starts, which
    inherit the setting."""

    _names = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")

    def __enter__(self) -> None:
        self._levels = [(logging.getLogger(n), logging.getLogger(n).level) for n in self._names]
        for log, _ in self._levels:
            log.setLevel(logging.WARNING)
        main = threading.current_thread() is threading.main_thread()
        self._sigint = signal.getsignal(signal.SIGINT) if main else None

    def __exit__(self, *exc: object) -> None:
        for log, level in self._levels:
            log.setLevel(level)
        if self._sigint is not None and signal.getsignal(signal.SIGINT) is not self._sigint:
            signal.signal(signal.SIGINT, self._sigint)
