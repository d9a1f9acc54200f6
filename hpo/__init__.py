"""hpo: hyperparameter optimisation of a binary classifier with Optuna, PyTorch Lightning and TensorBoard."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import ConfigError, DataError, HpoError, StudyError, WeightsError
from hpo.paths import StudyPaths, validate_study_name

if TYPE_CHECKING:
    from hpo.config import Experiment, load_experiment
    from hpo.model import MLP
    from hpo.predictor import LoadedModel, Predictor
    from hpo.study import BestSummary, RunResult, describe_best, run_study
    from hpo.weights import load_model

# torch, Lightning and Optuna take seconds to import: load them on first use so that `hpo --help` and input
# validation stay fast.
_LAZY = {
    "Experiment": "hpo.config",
    "load_experiment": "hpo.config",
    "MLP": "hpo.model",
    "BestSummary": "hpo.study",
    "RunResult": "hpo.study",
    "describe_best": "hpo.study",
    "run_study": "hpo.study",
    "LoadedModel": "hpo.predictor",
    "Predictor": "hpo.predictor",
    "load_model": "hpo.weights",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")


__all__ = [
    "MLP",
    "BestSummary",
    "ConfigError",
    "DataError",
    "Experiment",
    "HpoError",
    "LoadedModel",
    "Predictor",
    "RunResult",
    "StudyError",
    "StudyPaths",
    "WeightsError",
    "describe_best",
    "load_best",
    "load_experiment",
    "load_model",
    "run_study",
]


def load_best(study: str, root: str | Path = "studies", device: str | None = None) -> Predictor:
    """Load the best model of a study (``<root>/<study>/best``) as a :class:`Predictor`, in eval mode.

    The predictor applies the saved standardisation and temperature, cuts at the saved threshold and returns labels
    in the training data's own values; it runs on the first CUDA GPU when there is one (or on ``device``).

    Example:
        >>> best = hpo.load_best("default")  # doctest: +SKIP
        >>> best.predict_proba(frame)  # a DataFrame with the feature columns by name, or an array  # doctest: +SKIP
        >>> best.predict(frame)  # labels such as 'malignant' / 'benign'  # doctest: +SKIP

    Raises:
        WeightsError: there are no best weights yet, or they are damaged.
    """
    paths = StudyPaths(Path(root), validate_study_name(study, "study"))
    if not paths.best.exists():
        raise WeightsError(
            f"{paths.best}: no best weights yet for study {study!r}; run `hpo run` until a trial completes"
        )
    from hpo.weights import load_model

    return load_model(paths.best, device)
