"""What a trained trial reports to Optuna: its objective values and constraint violations, taken at the best epoch
(by the first objective), with the model metrics measured once after training and logged as ``hp/...`` metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl

from hpo.config.constraints import feasible, violations
from hpo.config.experiment import StudySettings
from hpo.metrics import hp_name
from hpo.model import MLP
from hpo.train.lightning_module import BestEpochCallback
from hpo.train.model_metrics import measure_model

__all__ = ["OutcomeCallback", "TrialOutcome", "trial_outcome"]


@dataclass(frozen=True)
class TrialOutcome:
    """A completed trial's numbers: every metric at the best epoch (model metrics included), the value of each
    objective in the study's order, and constraint text -> violation (``<= 0``: satisfied)."""

    metrics: dict[str, float]
    values: tuple[float, ...]
    constraints: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return feasible(self.constraints)


def trial_outcome(
    settings: StudySettings, epoch_metrics: dict[str, float], model_metrics: dict[str, float]
) -> TrialOutcome:
    """Combine the best epoch's validation metrics and the model metrics into the values Optuna receives."""
    metrics = {**epoch_metrics, **model_metrics}
    values = tuple(float(metrics.get(o.metric, math.nan)) for o in settings.objectives)
    return TrialOutcome(metrics, values, violations(settings.constraints, metrics))


class OutcomeCallback(pl.Callback):
    """At the end of training, measure the model metrics the study needs on the best epoch's weights and compute
    :attr:`outcome`; for a multi-objective study (or one using model metrics) log every objective and model metric
    as its ``hp/...`` scalar at ``step = epochs trained``, the step of ``hp_metric``, so that TensorBoard's HParams
    view shows exactly the values Optuna received.

    Must come after ``best`` in the trainer's callbacks (it reads the best epoch that ``best`` has kept).

    Args:
        settings: the study's objectives and constraints.
        best: the callback keeping the best epoch by the first objective.
        model_kwargs: the ``MLP`` arguments of the trial.
    """

    def __init__(self, settings: StudySettings, best: BestEpochCallback, model_kwargs: dict[str, Any]) -> None:
        self.settings = settings
        self.best = best
        self.model_kwargs = model_kwargs
        self.outcome: TrialOutcome | None = None

    def result(self) -> TrialOutcome:
        """:attr:`outcome`, computed now (without model metrics) if training ended before any epoch was kept."""
        if self.outcome is None:
            self.outcome = trial_outcome(self.settings, dict(self.best.best_metrics), {})
        return self.outcome

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best.best_epoch < 0:
            return
        measured: dict[str, float] = {}
        if self.settings.model_metrics:
            model = MLP(**self.model_kwargs)
            model.load_state_dict(self.best.best_state)
            measured = measure_model(model, int(self.model_kwargs["n_features"]), self.settings.model_metrics)
        self.outcome = trial_outcome(self.settings, dict(self.best.best_metrics), measured)
        if trainer.logger is not None and (self.settings.multi_objective or measured):
            objectives = [o.metric for o in self.settings.objectives] if self.settings.multi_objective else []
            names = {*measured, *objectives}
            scalars = {hp_name(name): self.outcome.metrics[name] for name in names if name in self.outcome.metrics}
            trainer.logger.log_metrics(scalars, step=self.best.epochs_trained)
