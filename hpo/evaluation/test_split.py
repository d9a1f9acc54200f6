"""Score the saved model (and the ensemble, when there is one) once on the held-out test split, and record it.

The test rows are named in ``model.json`` (``data.test_rows``, file rows) with the CSV they come from
(``data.path``), so a saved model can be scored at any time from ``best/`` alone (``hpo evaluate``). Nothing here
reaches Optuna: no trial's value and no selection ever depends on the test labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo.best.folder import CARD_FILE, ENSEMBLE_DIR, read_card, update_card
from hpo.data.loading import file_sha256, read_table
from hpo.errors import StudyError, WeightsError
from hpo.evaluation.scores import TestScores, score_probabilities
from hpo.paths import StudyPaths

__all__ = ["TestEvaluation", "evaluate_best", "evaluate_folder"]


@dataclass(frozen=True)
class TestEvaluation:
    """The test scores of ``best/``: its model's, and the ensemble's when ``best/`` has one."""

    trial: int
    model: TestScores
    ensemble: TestScores | None = None

    def card_entries(self) -> dict[str, Any]:
        """What ``model.json`` records: ``test`` (and ``ensemble.test``)."""
        entries: dict[str, Any] = {"test": {"split": "test", **self.model.to_json()}}
        if self.ensemble is not None:
            entries["ensemble_test"] = {"split": "test", **self.ensemble.to_json()}
        return entries


def _positive(column: pd.Series, positive: Any) -> np.ndarray:
    """Which cells of the target column hold the positive label (as the training data encoded it)."""
    if isinstance(positive, (bool, int, float)) and pd.api.types.is_numeric_dtype(column.dtype):
        return (column.to_numpy(dtype=np.float64) == float(positive)).astype(np.float64)
    text = column.astype(str).str.strip()
    if isinstance(positive, bool):  # true/false text in any case was read as booleans for training
        return (text.str.lower() == str(positive).lower()).to_numpy(dtype=np.float64)
    return (text == str(positive)).to_numpy(dtype=np.float64)


def evaluate_folder(folder: Path, device: str | None = None) -> TestScores | None:
    """Score the model saved in ``folder`` (or an ensemble folder) on its test rows; None when it has none.

    Raises:
        WeightsError: the folder cannot be loaded.
        DataError: the data file it was trained on cannot be read any more.
        StudyError: the data file no longer has the test rows.
    """
    from hpo.inference.loading import load_model

    card = read_card(folder)
    data = card.get("data", {})
    rows = data.get("test_rows") or []
    if not rows:
        return None
    path = Path(data.get("path") or data.get("source", ""))
    recorded = data.get("sha256")
    if recorded and path.is_file() and file_sha256(path) != recorded:
        raise StudyError(
            f"{path}: is not the file the model in {folder} was trained on (its sha256 differs from the one "
            f"{folder / CARD_FILE} records), so its test split cannot be scored on it and the recorded scores are "
            "kept; put the original file back at that path, or run a new study on the new data"
        )
    frame = read_table(path)
    missing = [r for r in rows if r not in frame.index]
    if missing:
        raise StudyError(
            f"{path}: has {len(frame)} data rows, but the test split of {folder / CARD_FILE} names row {missing[0]}; "
            "the file changed since the study trained, so its test split is gone: rerun the study"
        )
    test = frame.loc[rows]
    y = _positive(test[card["target"]], card["labels"]["positive"])
    predictor = load_model(folder, device)
    return score_probabilities(predictor.predict_proba(test), y, predictor.threshold)


def evaluate_best(paths: StudyPaths, device: str | None = None, *, record: bool = True) -> TestEvaluation | None:
    """Score ``best/`` (and its ensemble) on the test split; with ``record``, write the scores into
    ``best/model.json`` and log them as ``test/...`` scalars on the best trial's TensorBoard run.

    Returns:
        None when the study keeps no test split (``data.test_fraction`` 0).

    Raises:
        WeightsError: no single-model ``best/`` to score (none yet, or a Pareto front).
    """
    if not (paths.best / CARD_FILE).is_file():
        raise WeightsError(
            f"{paths.best}: holds no single best model to score (none yet, or one folder per Pareto-optimal trial); "
            "run `hpo run` until a trial completes"
        )
    trial = int(read_card(paths.best)["trial"])
    model = evaluate_folder(paths.best, device)
    if model is None:
        return None
    ensemble_dir = paths.best / ENSEMBLE_DIR
    ensemble = evaluate_folder(ensemble_dir, device) if (ensemble_dir / CARD_FILE).is_file() else None
    evaluation = TestEvaluation(trial, model, ensemble)
    if record:
        update_card(paths, trial, evaluation.card_entries())
        _log_to_tensorboard(paths, trial, evaluation)
    return evaluation


def _log_to_tensorboard(paths: StudyPaths, trial: int, evaluation: TestEvaluation) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = paths.tensorboard_dir / paths.trial_version(trial)
    if not run.is_dir():
        return  # the trial ran on another host: its run is there
    writer = SummaryWriter(log_dir=str(run))
    try:
        for prefix, scores in (("test", evaluation.model), ("test_ensemble", evaluation.ensemble)):
            if scores is None:
                continue
            for key, value in scores.to_json().items():
                if isinstance(value, float):
                    writer.add_scalar(f"{prefix}/{key}", value, 0)
    finally:
        writer.close()
