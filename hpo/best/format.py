"""The best trial's weights on disk: ``best/model.pt`` and ``best/model.json``, built, promoted, and loaded back.

The atomic replacement of ``best/`` itself lives in :mod:`hpo.best.folder`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hpo.best.folder import best_lock, replace_best, write_best_files, write_files
from hpo.errors import ConfigError, StudyError, WeightsError
from hpo.inference.predictor import LoadedModel, Predictor, default_device
from hpo.model import MLP
from hpo.paths import FRONT_FILE, StudyPaths

if TYPE_CHECKING:  # imported for annotations only: loading a model needs neither Lightning nor Optuna
    from hpo.config.experiment import Experiment
    from hpo.data.loading import PreparedData
    from hpo.train.objective import TrainedModel

__all__ = [
    "FORMAT",
    "LoadedModel",
    "Predictor",
    "best_files",
    "best_lock",
    "build_model_card",
    "load_model",
    "promote_best_files",
    "promote_best_weights",
    "replace_best",
    "write_best_files",
    "write_best_weights",
    "write_files",
]

FORMAT = "hpo.model/1"
MODEL_FILE = "model.pt"
CARD_FILE = "model.json"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("hpo", "torch", "pytorch-lightning", "optuna", "torchmetrics"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def build_model_card(experiment: Experiment, data: PreparedData, trained: TrainedModel) -> dict[str, Any]:
    """The content of ``model.json`` but its ``weights`` entry, which :func:`write_best_weights` adds."""
    return {
        "format": FORMAT,
        "study": experiment.study.name,
        "trial": trained.trial_number,
        "value": trained.value,
        "metric": experiment.study.metric,
        "direction": experiment.study.direction,
        "params": trained.params,
        "metrics": trained.metrics,
        "best_epoch": trained.best_epoch,
        "model": {"class": f"{MLP.__module__}.{MLP.__qualname__}", "kwargs": trained.model_kwargs},
        "features": list(data.feature_names),
        "standardization": {"mean": list(data.standardization.mean), "std": list(data.standardization.std)},
        "target": experiment.data.target,
        "labels": {"negative": data.labels[0], "positive": data.labels[1]},
        "data": {
            "source": data.source,
            "validation_fraction": experiment.data.validation_fraction,
            "split_seed": experiment.data.split_seed,
            "n_train": len(data.train_rows),
            "n_validation": len(data.val_rows),
            "validation_rows": list(data.val_rows),
            "id_columns": list(experiment.data.id_columns),
        },
        "versions": _versions(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def best_files(state_dict: dict[str, Any], card: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of ``model.pt`` and of ``model.json`` (``card`` with the weights' sha256 filled in)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    payload = buffer.getvalue()
    card = {
        **card,
        "weights": {"file": MODEL_FILE, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)},
    }
    return {MODEL_FILE: payload, CARD_FILE: (json.dumps(card, indent=2, allow_nan=False) + "\n").encode()}


def write_best_weights(
    paths: StudyPaths,
    state_dict: dict[str, Any],
    card: dict[str, Any],
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Replace ``best/`` by a folder holding ``state_dict`` and ``card`` (with the weights' sha256 filled in).

    ``extra_files`` (name -> content) go into the same folder; see :func:`write_best_files`.
    """
    return write_best_files(paths, {**best_files(state_dict, card), **(extra_files or {})})


def read_card(folder: Path) -> dict[str, Any]:
    """Read and check the ``model.json`` of a weights folder."""
    path = folder / CARD_FILE
    if not path.exists() and (folder / FRONT_FILE).is_file():
        raise WeightsError(
            f"{folder}: holds the Pareto front of a multi-objective study (front.json and one trial_NNNN folder per "
            f"model), not one model; pick one: {folder}/trial_NNNN, `hpo predict --study STUDY --trial N`, or "
            "hpo.load_best(study, trial=N) (`hpo best --study STUDY` lists them)"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{path}: not found; {folder} is not a folder written by hpo (it needs model.json)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: cannot be read as JSON ({exc}); it is damaged, rerun the study") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise WeightsError(f"{path}: is not an hpo model description (format {FORMAT!r} expected)")
    return card


def promote_best_weights(paths: StudyPaths, trained: TrainedModel, card: dict[str, Any], is_best: Any) -> bool:
    """Write ``trained`` to ``best/`` if it is still the study's best once the lock is held.

    Args:
        paths: the study's files.
        trained: the weights of a completed trial.
        card: its ``model.json`` content.
        is_best: called under the lock with the trial number; True when the storage says it is the best trial.

    Returns:
        True when ``best/`` now holds ``trained``.

    Raises:
        StudyError: the folder cannot be written (disk full, read-only); ``best/`` keeps its previous content.
    """
    return promote_best_files(paths, trained.trial_number, is_best, lambda: best_files(trained.state_dict, card))


def promote_best_files(
    paths: StudyPaths, trial_number: int, is_best: Any, files: Callable[[], Mapping[str, bytes]]
) -> bool:
    """Replace ``best/`` by ``files()`` (name -> content) if trial ``trial_number`` is the best once the lock is held.

    ``files`` is called under the lock and only when the trial is the best (see :func:`promote_best_weights`).

    Raises:
        StudyError: the folder cannot be written (disk full, read-only); ``best/`` keeps its previous content.
    """
    try:
        with best_lock(paths):
            if not is_best(trial_number):
                return False
            write_best_files(paths, files())
            return True
    except OSError as exc:
        previous = "nothing"
        if (paths.best / CARD_FILE).exists():
            previous = f"trial {read_card(paths.best).get('trial')}"
        raise StudyError(
            f"{paths.study_dir}: cannot write the best weights of trial {trial_number} "
            f"({exc.strerror or exc}); best/ is unchanged and still holds {previous}, and the trial stays recorded "
            "as complete in the storage, but its weights are lost. Free disk space or make the folder writable, "
            "then rerun the same command to finish the budget."
        ) from None


def _architecture_mismatch(expected: dict[str, torch.Tensor], state: object) -> str | None:
    """The first key where ``state`` differs from the architecture's ``expected`` state_dict, in words."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a state_dict"
    for key, tensor in expected.items():
        if key not in state:
            return f"key {key!r} is missing"
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"key {key!r} has shape {shape}, the architecture needs {tuple(tensor.shape)}"
    extra = [key for key in state if key not in expected]
    if extra:
        return f"key {extra[0]!r} is not part of the architecture"
    return None


def load_model(folder: str | Path, device: str | torch.device | None = None) -> Predictor:
    """Load the weights folder written by hpo (``studies/<study>/best``), checking its sha256 and architecture.

    Args:
        folder: a folder holding ``model.json`` and ``model.pt``.
        device: where the model runs; default the first CUDA GPU when there is one, else the CPU.

    Raises:
        WeightsError: the folder, its description or its weights are missing, damaged or do not match.
        ConfigError: ``device`` cannot be used.
    """
    folder = Path(folder)
    card = read_card(folder)
    path = folder / card["weights"]["file"]
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != card["weights"]["sha256"]:
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match {card['weights']['sha256'][:12]}... recorded in "
            f"{folder / CARD_FILE}; the file was changed or torn, rerun the study or restore it"
        )
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise WeightsError(f"{path}: is not a loadable state_dict ({type(exc).__name__}: {exc})") from None
    model = MLP(**card["model"]["kwargs"])
    mismatch = _architecture_mismatch(model.state_dict(), state)
    if mismatch is not None:
        raise WeightsError(
            f"{path}: does not match the architecture in {CARD_FILE}: {mismatch}; the two files come from different "
            "runs or one was edited, rerun the study or restore them"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: does not match the architecture in {CARD_FILE}: {exc}") from None
    try:
        target = torch.device(device) if device is not None else default_device()
        model.to(target)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise ConfigError(
            f"device {device!r}: cannot be used here ({str(exc).splitlines()[0]}); pass cpu or an available GPU "
            "such as cuda:0, or leave it out to use a GPU when there is one"
        ) from None
    model.eval()
    return Predictor(model, card, folder, target)
