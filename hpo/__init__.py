"""hpo: hyperparameter optimisation of a binary classifier with Optuna, PyTorch Lightning and TensorBoard."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import ConfigError, DataError, HpoError, StudyError, WeightsError
from hpo.paths import StudyPaths, validate_study_name

if TYPE_CHECKING:
    from hpo.best.format import load_model
    from hpo.config.experiment import Experiment, load_experiment
    from hpo.inference.predictor import LoadedModel, Predictor
    from hpo.model import MLP
    from hpo.search.run import RunResult, run_study
    from hpo.views.best_summary import BestSummary, describe_best

# torch, Lightning and Optuna take seconds to import: load them on first use so that `hpo --help` and input
# validation stay fast.
_LAZY = {
    "Experiment": "hpo.config.experiment",
    "load_experiment": "hpo.config.experiment",
    "MLP": "hpo.model",
    "BestSummary": "hpo.views.best_summary",
    "RunResult": "hpo.search.run",
    "describe_best": "hpo.views.best_summary",
    "run_study": "hpo.search.run",
    "LoadedModel": "hpo.inference.predictor",
    "Predictor": "hpo.inference.predictor",
    "load_model": "hpo.best.format",
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


def load_best(
    study: str | Path,
    root: str | Path = "studies",
    device: str | None = None,
    *,
    trial: int | None = None,
    maximize: str | None = None,
    minimize: str | None = None,
    where: str | Sequence[str] = (),
) -> Predictor:
    """Load the best model of a study (``<root>/<study>/best``) as a :class:`Predictor`, in eval mode.

    The predictor applies the saved standardisation and temperature, cuts at the saved threshold and returns labels
    in the training data's own values; it runs on the first CUDA GPU when there is one (or on ``device``).

    A multi-objective study keeps one model per Pareto-optimal trial (``best/trial_NNNN/``): pick one by number
    (``trial=``), or by a rule: ``where`` keeps the trials whose recorded metrics satisfy constraints written as in
    ``study.constraints``, then ``maximize`` or ``minimize`` takes the best of them by one metric (ties: the lowest
    trial number). The same arguments work on a single-objective study, whose only candidate is its best trial.

    Args:
        study: a study name under ``root`` (a string), or the folder of a study (a :class:`~pathlib.Path`, or a
            string with a ``/`` such as ``"studies/pareto"``).
        root: the folder holding one folder per study.
        device: where the model runs.
        trial: the trial to load.
        maximize: the metric whose highest value wins, e.g. ``"val/auroc"``.
        minimize: the metric whose lowest value wins, e.g. ``"model/latency_ms"``.
        where: one constraint or a list, e.g. ``"model/params <= 50000"``.

    Example:
        >>> best = hpo.load_best("default")  # doctest: +SKIP
        >>> best.predict_proba(frame)  # a DataFrame with the feature columns by name, or an array  # doctest: +SKIP
        >>> best.predict(frame)  # labels such as 'malignant' / 'benign'  # doctest: +SKIP
        >>> small = hpo.load_best("pareto", maximize="val/auroc", where="model/params <= 50000")  # doctest: +SKIP

    Raises:
        WeightsError: there are no best weights yet, or they are damaged.
        StudyError: no saved trial fits the choice, or several do (a Pareto front) and nothing picks one.
        ConfigError: a rule that cannot be read.
    """
    if isinstance(study, Path) or (isinstance(study, str) and ("/" in study or os.sep in study)):
        best = Path(study) / "best"  # a folder: a study name cannot hold a path separator
        name = Path(study).name
    else:
        best = StudyPaths(Path(root), validate_study_name(study, "study")).best
        name = study
    if not best.exists():
        raise WeightsError(f"{best}: no best weights yet for study {name!r}; run `hpo run` until a trial completes")
    from hpo.best.format import load_model
    from hpo.best.selection import choose_folder

    folder = choose_folder(best, trial=trial, maximize=maximize, minimize=minimize, where=where)
    return load_model(folder, device)
