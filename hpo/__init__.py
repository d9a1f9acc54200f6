"""hpo: hyperparameter optimisation of a binary classifier with Optuna, PyTorch Lightning and TensorBoard.

The public names below are imported on first use, so ``import hpo`` stays cheap (torch, Lightning and Optuna take
seconds to import). The concept packages: ``config`` (search-space files), ``data``, ``train`` (one trial),
``search`` (running a study), ``study`` (a study in its storage), ``best`` (the on-disk model format),
``inference`` (using a model), ``views`` (what the commands show) and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.config.experiment import Experiment, load_experiment
    from hpo.errors import ConfigError, DataError, HpoError, StudyError, WeightsError
    from hpo.inference.loading import load_best, load_model
    from hpo.inference.predictor import Predictor
    from hpo.model import MLP
    from hpo.paths import StudyPaths
    from hpo.search.run import RunResult, run_study
    from hpo.views.best_summary import BestSummary, describe_best

_LAZY = {
    "ConfigError": "hpo.errors",
    "DataError": "hpo.errors",
    "HpoError": "hpo.errors",
    "StudyError": "hpo.errors",
    "WeightsError": "hpo.errors",
    "StudyPaths": "hpo.paths",
    "Experiment": "hpo.config.experiment",
    "load_experiment": "hpo.config.experiment",
    "MLP": "hpo.model",
    "BestSummary": "hpo.views.best_summary",
    "describe_best": "hpo.views.best_summary",
    "RunResult": "hpo.search.run",
    "run_study": "hpo.search.run",
    "Predictor": "hpo.inference.predictor",
    "load_best": "hpo.inference.loading",
    "load_model": "hpo.inference.loading",
}

__all__ = [
    "MLP",
    "BestSummary",
    "ConfigError",
    "DataError",
    "Experiment",
    "HpoError",
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
