"""What is fitted and measured on the validation split when a trial becomes the best: temperature, threshold and
probability quality, as ``model.json`` entries and the files ``calibration.json`` and ``reliability.png``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hpo.best.folder import CALIBRATION_FILE, RELIABILITY_FILE
from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData
from hpo.inference.calibration import (
    ProbabilityQuality,
    TemperatureFit,
    fit_temperature,
    logits_to_probabilities,
    probability_quality,
)
from hpo.inference.reliability import reliability_png
from hpo.inference.threshold import ThresholdChoice, choose_threshold
from hpo.model import MLP
from hpo.train.objective import TrainedModel

__all__ = [
    "CALIBRATION_FORMAT",
    "ValidationReport",
    "build_validation_report",
    "report_from_logits",
]

CALIBRATION_FORMAT = "hpo.inference.calibration/1"


@dataclass(frozen=True)
class ValidationReport:
    """The probability quality, temperature and threshold of one trained model on the validation split."""

    trial: int
    temperature: TemperatureFit | None  # None: temperature scaling is switched off
    threshold: ThresholdChoice
    quality: ProbabilityQuality  # of the probabilities the saved model predicts
    uncalibrated: ProbabilityQuality  # of sigmoid(logits), before any temperature

    @property
    def temperature_value(self) -> float:
        return self.temperature.temperature if self.temperature is not None else 1.0

    def card_entries(self) -> dict[str, Any]:
        """Entries added to ``model.json``: what the predictor applies, and a summary of ``calibration.json``."""
        return {
            "temperature": self.temperature_value,
            "threshold": self.threshold.to_json(),
            "calibration": {
                "file": CALIBRATION_FILE,
                "plot": RELIABILITY_FILE,
                "brier": self.quality.brier,
                "log_loss": self.quality.log_loss,
                "ece": self.quality.ece,
            },
        }

    def to_json(self, study: str) -> dict[str, Any]:
        """The content of ``calibration.json``."""
        return {
            "format": CALIBRATION_FORMAT,
            "study": study,
            "trial": self.trial,
            "split": "validation",
            "temperature_scaling": (
                {"enabled": True, **self.temperature.to_json()} if self.temperature is not None else {"enabled": False}
            ),
            "threshold": self.threshold.to_json(),
            "probabilities": self.quality.to_json(),
            "uncalibrated": self.uncalibrated.to_json(),
        }

    def files(self, study: str) -> dict[str, bytes]:
        """``calibration.json`` and ``reliability.png``, to be written beside the weights."""
        changed = self.temperature is not None and self.temperature.kept
        title = f"{study}, trial {self.trial}" + (f", temperature {self.temperature_value:.3g}" if changed else "")
        return {
            CALIBRATION_FILE: (json.dumps(self.to_json(study), indent=2, allow_nan=False) + "\n").encode(),
            RELIABILITY_FILE: reliability_png(self.quality, title, self.uncalibrated if changed else None),
        }


def validation_logits(trained: TrainedModel, data: PreparedData) -> np.ndarray:
    """The model's logits on the validation split (one forward pass on the CPU, in eval mode)."""
    model = MLP(**trained.model_kwargs)
    model.load_state_dict(trained.state_dict)
    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(data.prepared(trained.scaling).x_val)).float().numpy()


def report_from_logits(logits: np.ndarray, targets: np.ndarray, experiment: Experiment, trial: int) -> ValidationReport:
    """Fit the temperature (if switched on), then measure and choose the threshold on the resulting probabilities."""
    settings = experiment.inference
    fit = fit_temperature(logits, targets) if settings.temperature_scaling else None
    temperature = fit.temperature if fit is not None else 1.0
    tensor = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    raw = logits_to_probabilities(tensor).double().numpy()
    probabilities = logits_to_probabilities(tensor, temperature).double().numpy()
    return ValidationReport(
        trial,
        fit,
        choose_threshold(probabilities, targets, settings.threshold),
        probability_quality(probabilities, targets),
        probability_quality(raw, targets),
    )


def build_validation_report(experiment: Experiment, data: PreparedData, trained: TrainedModel) -> ValidationReport:
    """Measure a completed trial's model on the validation split (see :func:`report_from_logits`)."""
    return report_from_logits(
        validation_logits(trained, data), data.y_val.astype(np.float64), experiment, trained.trial_number
    )
