"""The predictor of a saved model: raw rows through the saved preprocessing, temperature, threshold and labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hpo.data.preprocessing import Preprocessor, TransformCounts
from hpo.errors import DataError
from hpo.inference.calibration import logits_to_probabilities
from hpo.inference.threshold import DEFAULT_THRESHOLD
from hpo.model import MLP

__all__ = ["BATCH_ROWS", "EnsemblePredictor", "Predictor", "default_device"]

#: Rows per forward pass: small enough for any GPU, large enough that the CPU spends its time in matrix products.
BATCH_ROWS = 8192


def default_device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _SavedModel:
    """What every saved model (one network, or an ensemble) reads from its ``model.json``: features, labels, threshold,
    id columns, and the cut of probabilities into labels."""

    card: dict[str, Any]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.card["features"])

    @property
    def labels(self) -> tuple[Any, Any]:
        """``(negative, positive)`` in the training data's own values."""
        return self.card["labels"]["negative"], self.card["labels"]["positive"]

    @property
    def threshold(self) -> float:
        """Rows with a probability >= this are predicted positive."""
        return float(self.card.get("threshold", {}).get("value", DEFAULT_THRESHOLD))

    @property
    def id_columns(self) -> tuple[str, ...]:
        return tuple(self.card.get("data", {}).get("id_columns", ()))

    def predict_proba(self, x: object) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: object) -> np.ndarray:
        """Labels (the training data's own values) for the rows of ``x``: positive where the probability reaches
        :attr:`threshold`. Takes the same inputs as :meth:`predict_proba`."""
        return self.labels_of(self.predict_proba(x))

    def labels_of(self, probabilities: np.ndarray) -> np.ndarray:
        """Cut probabilities at :attr:`threshold` into the training data's label values."""
        return np.asarray(self.labels)[(np.asarray(probabilities) >= self.threshold).astype(np.int64)]


@dataclass(frozen=True)
class Predictor(_SavedModel):
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
    preprocessor: Preprocessor

    @property
    def temperature(self) -> float:
        """The logits are divided by this before the sigmoid (1.0: no temperature scaling)."""
        return float(self.card.get("temperature", 1.0))

    def inputs(self, x: object, where: str = "predict_proba") -> tuple[np.ndarray, TransformCounts]:
        """Apply the saved preprocessing to raw rows: the network's float32 inputs, and what was met per column.

        Args:
            x: a DataFrame with the feature columns by name (other columns are ignored), or a 2-D array (or list of
                rows) with the features as columns in training order.
            where: the start of error messages.

        Raises:
            DataError: a missing feature column, a wrong shape, or text in a numeric column (naming rows from 0).
        """
        if not isinstance(x, pd.DataFrame):
            try:
                array = np.asarray(x, dtype=object)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{where}: expected a DataFrame or a 2-D array of rows, got {type(x).__name__} ({exc})"
                ) from None
            names = self.feature_names
            if array.ndim != 2 or array.shape[1] != len(names):
                raise DataError(
                    f"{where}: expected rows of {len(names)} features in training order ({', '.join(names[:3])}"
                    f"{', ...' if len(names) > 3 else ''}), got an array of shape {array.shape}; pass a DataFrame to "
                    "match columns by name"
                )
            x = pd.DataFrame(array, columns=list(names)).infer_objects()
        return self.preprocessor.transform(x, where=where, first_line=0)

    def predict_proba(self, x: object) -> np.ndarray:
        """Probabilities of the positive label, shape ``(n,)``, float64.

        Args:
            x: raw rows as for :meth:`inputs`: blanks (NaN, None) and unseen levels are handled as in training.

        Raises:
            DataError: the input does not fit the model (the message names the columns and rows).
        """
        return self.probabilities_of(self.inputs(x)[0])

    def score_rows(self, frame: pd.DataFrame, where: str, first_line: int) -> tuple[np.ndarray, TransformCounts]:
        """Probabilities of raw rows read from a file (``first_line``: the file line of the first row), and what the
        preprocessing met in them."""
        inputs, counts = self.preprocessor.transform(frame, where=where, first_line=first_line)
        return self.probabilities_of(inputs), counts

    def probabilities_of(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities for preprocessed inputs (from :meth:`inputs`), in batches of :data:`BATCH_ROWS` rows."""
        tensor = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        out = np.empty(len(tensor), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(tensor), BATCH_ROWS):
                logits = self.model(tensor[start : start + BATCH_ROWS].to(self.device))
                out[start : start + BATCH_ROWS] = logits_to_probabilities(logits, self.temperature).cpu().numpy()
        return out


@dataclass(frozen=True)
class EnsemblePredictor(_SavedModel):
    """The mean of several saved models' probabilities (``best/ensemble/``), cut at the ensemble's own threshold.

    It takes the same raw rows as :class:`Predictor`; every member applies its own preprocessing and temperature.
    """

    members: tuple[Predictor, ...]
    card: dict[str, Any]
    folder: Path

    @property
    def preprocessor(self) -> Preprocessor:
        """The first member's preprocessing (for checks of column names; each member applies its own)."""
        return self.members[0].preprocessor

    def predict_proba(self, x: object) -> np.ndarray:
        """The mean of the members' probabilities of the positive label (see :meth:`Predictor.predict_proba`)."""
        return np.mean([member.predict_proba(x) for member in self.members], axis=0)

    def score_rows(self, frame: pd.DataFrame, where: str, first_line: int) -> tuple[np.ndarray, TransformCounts]:
        scored = [member.score_rows(frame, where, first_line) for member in self.members]
        return np.mean([p for p, _ in scored], axis=0), scored[0][1]
