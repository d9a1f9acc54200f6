"""The predictor of a saved model: checked inputs, the saved standardisation, temperature, threshold and labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpo.data.feature_checks import ValueProblems, feature_values, select_features
from hpo.data.loading import Standardization
from hpo.errors import DataError
from hpo.inference.calibration import logits_to_probabilities
from hpo.inference.threshold import DEFAULT_THRESHOLD
from hpo.model import MLP

__all__ = ["BATCH_ROWS", "Predictor", "default_device"]

#: Rows per forward pass: small enough for any GPU, large enough that the CPU spends its time in matrix products.
BATCH_ROWS = 8192


def default_device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Predictor:
    """A trained model in eval mode with everything needed to use it on raw rows.

    Build it with :func:`hpo.load_model` or :func:`hpo.load_best`. ``predict_proba`` gives the probability of the
    positive label (after the saved temperature, if any); ``predict`` cuts it at the saved threshold and returns the
    labels as they were written in the training data.

    Example:
        >>> best = hpo.load_best("default")  # doctest: +SKIP
        >>> best.predict(frame)  # a DataFrame with the training feature columns, by name  # doctest: +SKIP
    """

    model: MLP
    card: dict[str, Any]
    folder: Path
    device: torch.device

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.card["features"])

    @property
    def standardization(self) -> Standardization:
        stats = self.card["standardization"]
        return Standardization(tuple(stats["mean"]), tuple(stats["std"]))

    @property
    def labels(self) -> tuple[Any, Any]:
        """``(negative, positive)`` in the training data's own values."""
        return self.card["labels"]["negative"], self.card["labels"]["positive"]

    @property
    def threshold(self) -> float:
        """Rows with a probability >= this are predicted positive."""
        return float(self.card.get("threshold", {}).get("value", DEFAULT_THRESHOLD))

    @property
    def temperature(self) -> float:
        """The logits are divided by this before the sigmoid (1.0: no temperature scaling)."""
        return float(self.card.get("temperature", 1.0))

    @property
    def id_columns(self) -> tuple[str, ...]:
        return tuple(self.card.get("data", {}).get("id_columns", ()))

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        """Columns an input may have besides the features: the id columns and the target."""
        target = self.card.get("target")
        return (*self.id_columns, *([target] if target else []))

    def feature_matrix(self, x: object, where: str = "predict_proba") -> np.ndarray:
        """Check ``x`` and return its raw feature values (float64, columns in training order).

        Raises:
            DataError: missing, repeated or unknown columns, a wrong shape, text, missing or infinite values.
        """
        frame = select_features(x, self.feature_names, self.ignored_columns, where)
        problems = ValueProblems()
        values = feature_values(frame, problems)
        if problems:
            raise DataError(problems.message(where, "row", 0, "nothing was predicted; rows are counted from 0"))
        return values

    def predict_proba(self, x: object) -> np.ndarray:
        """Probabilities of the positive label, shape ``(n,)``, float64.

        Args:
            x: a DataFrame with the feature columns by name (id and target columns are ignored), or a 2-D array
                with the features as columns in training order. Raw values: the saved standardisation is applied.

        Raises:
            DataError: the input does not fit the model (the message names the columns and rows).
        """
        return self.probabilities_of(self.feature_matrix(x, "predict_proba"))

    def predict(self, x: object) -> np.ndarray:
        """Labels (the training data's own values) for the rows of ``x``: positive where the probability reaches
        :attr:`threshold`. Takes the same inputs as :meth:`predict_proba`."""
        return self.labels_of(self.predict_proba(x))

    def labels_of(self, probabilities: np.ndarray) -> np.ndarray:
        """Cut probabilities at :attr:`threshold` into the training data's label values."""
        return np.asarray(self.labels)[(np.asarray(probabilities) >= self.threshold).astype(np.int64)]

    def probabilities_of(self, values: np.ndarray) -> np.ndarray:
        """Probabilities for raw feature values already checked by :meth:`feature_matrix` (float64, training order)."""
        scaled = torch.from_numpy(self.standardization.apply(values))
        out = np.empty(len(scaled), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(scaled), BATCH_ROWS):
                logits = self.model(scaled[start : start + BATCH_ROWS].to(self.device))
                out[start : start + BATCH_ROWS] = logits_to_probabilities(logits, self.temperature).cpu().numpy()
        return out
