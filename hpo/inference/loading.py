"""Loading a saved model for inference: ``load_model`` (one weights folder) and ``load_best`` (a study's best)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hpo.best.folder import CARD_FILE, ENSEMBLE_DIR, MAX_FILE_BYTES_ENV, read_card
from hpo.best.selection import choose_folder
from hpo.data.loading import open_regular_file
from hpo.data.preprocessing import Preprocessor
from hpo.errors import ConfigError, WeightsError
from hpo.inference.predictor import EnsemblePredictor, Predictor, default_device
from hpo.model import MLP
from hpo.paths import StudyPaths, validate_study_name

__all__ = ["load_best", "load_model"]


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


def _read_weights(folder: Path, card: dict[str, Any]) -> tuple[dict[str, Any], Path, bytes]:
    """``model.json``, the weights' path and bytes, read as one consistent pair.

    ``best/`` is replaced by an atomic rename, but the card and the weights are two reads: a promotion can land
    between them. Both are therefore read through one handle on the folder (``/proc/self/fd``), that is from the same
    directory whatever is renamed meanwhile; when a promotion deletes that directory during the reads, they are
    retried on the new one. A mismatch inside one directory is damage.
    """
    path = folder / _weights_file(card, folder)
    for _ in range(_READ_ATTEMPTS):
        try:
            handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            handle = None
        pinned = Path(f"/proc/self/fd/{handle}") if handle is not None else folder
        if not pinned.is_dir():
            pinned = folder  # no /proc here: plain paths (a rare torn read then reports as damage)
        try:
            card = read_card(pinned)
            path = folder / _weights_file(card, folder)
            payload = _read_weights_file(pinned / path.name, path)
        except _RefusedWeightsError:
            raise  # not a promotion in progress: a pipe, a device or a huge file is refused at once
        except (FileNotFoundError, WeightsError):
            time.sleep(0.01)  # the directory was being deleted by a promotion: read the new one
            continue
        except OSError as exc:
            raise WeightsError(f"{path}: cannot be read ({exc.strerror})") from None
        finally:
            if handle is not None:
                os.close(handle)
        digest = hashlib.sha256(payload).hexdigest()
        if digest == card["weights"]["sha256"]:
            return card, path, payload
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match {card['weights']['sha256'][:12]}... recorded in "
            f"{folder / CARD_FILE}; the file was changed or torn, rerun the study or restore it"
        )
    card = read_card(folder)  # a persistent problem: report it with the real paths
    path = folder / _weights_file(card, folder)
    if not path.exists():
        raise WeightsError(f"{path}: not found, though {folder / CARD_FILE} names it; rerun the study or restore it")
    raise WeightsError(f"{path}: cannot be read together with {folder / CARD_FILE}; rerun the study or restore it")


_READ_ATTEMPTS = 50
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The cap on the bytes read from a weights file when ``$HPO_MAX_FILE_BYTES`` is not set: an MLP for tabular data
#: is kilobytes to a few hundred MiB; anything larger was not written by hpo.
DEFAULT_MAX_WEIGHTS_BYTES = 1 << 30


class _RefusedWeightsError(WeightsError):
    """The weights file is not a regular file, or larger than the cap: refused at once, not retried."""


def _weights_file(card: dict[str, Any], folder: Path) -> str:
    """The weights' file name that ``model.json`` gives, once its ``weights`` entry is checked: a plain name inside
    the folder (never a path elsewhere, such as ``/dev/zero``) and a sha256."""
    entry = card.get("weights")
    name = entry.get("file") if isinstance(entry, dict) else None
    sha256 = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        problem = f"its weights file {name!r} is not a file name inside the folder"
    elif not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        problem = "it records no valid sha256 of the weights"
    else:
        return name
    raise _RefusedWeightsError(f"{folder / CARD_FILE}: {problem}; it was not written by hpo as it is, rerun the study")


def _max_weights_bytes() -> int:
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_WEIGHTS_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise _RefusedWeightsError(f"${MAX_FILE_BYTES_ENV}: must be a whole number of bytes >= 1, got {raw!r}")
    return int(raw)


def _read_weights_file(pinned: Path, path: Path) -> bytes:
    """The bytes of the weights file ``pinned`` (named ``path`` in messages): a regular file (a named pipe or a device
    is refused before it is opened), read up to ``$HPO_MAX_FILE_BYTES`` (default 1 GiB), so that a sparse or endless
    file cannot exhaust memory before its sha256 is checked."""
    limit = _max_weights_bytes()
    advice = "it is not a file hpo wrote; rerun the study or restore the file"
    with open_regular_file(pinned, refuse=_RefusedWeightsError, fix=advice, name=path) as handle:
        size = os.fstat(handle.fileno()).st_size
        payload = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(payload) > limit:
        shown = f"{size} bytes" if size > limit else f"over {limit} bytes"
        raise _RefusedWeightsError(
            f"{path}: is {shown}, more than the {limit} bytes hpo reads from a weights file (${MAX_FILE_BYTES_ENV} "
            f"sets the limit); {advice}"
        )
    return payload


def load_model(folder: str | Path, device: str | torch.device | None = None) -> Predictor | EnsemblePredictor:
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
    if card.get("kind") == "ensemble":
        names = card.get("members")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise WeightsError(f"{folder / CARD_FILE}: an ensemble card needs a list of member folders in 'members'")
        members = []
        for name in names:
            member = load_model(folder / name, device)
            if not isinstance(member, Predictor):
                raise WeightsError(f"{folder / name}: an ensemble member must be one model, not an ensemble")
            members.append(member)
        return EnsemblePredictor(members=tuple(members), card=card, folder=folder)
    if "preprocessing" not in card:
        raise WeightsError(
            f"{folder / CARD_FILE}: has no preprocessing (it was written by an older hpo that only standardised "
            "numbers); rerun the study with this version to write a loadable model"
        )
    card, path, payload = _read_weights(folder, card)
    preprocessor = Preprocessor.from_json(card["preprocessing"], str(folder / CARD_FILE))
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
    return Predictor(model=model, card=card, folder=folder, device=target, preprocessor=preprocessor)


def load_best(
    study: str | Path,
    root: str | Path = "studies",
    device: str | None = None,
    *,
    trial: int | None = None,
    maximize: str | None = None,
    minimize: str | None = None,
    where: str | Sequence[str] = (),
    ensemble: bool = True,
    allow_stale: bool = False,
    storage: str | None = None,
) -> Predictor | EnsemblePredictor:
    """Load the best model of a study (``<root>/<study>/best``) as a :class:`Predictor`, in eval mode; when the study
    built an ensemble (``inference.ensemble``) and nothing picks one trial, the :class:`EnsemblePredictor` instead.

    The predictor applies the saved preprocessing and temperature, cuts at the saved threshold and returns labels
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
        ensemble: False loads the single best model even when ``best/ensemble/`` exists.
        allow_stale: load ``best/`` even when the study's storage says another trial is the best (a run was killed
            between recording a trial and saving its weights; the next ``hpo run`` repairs it).
        storage: the study's storage URL (default ``$HPO_STORAGE``, else the study's own SQLite file); used only to
            check that ``best/`` holds the storage's best trial.
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
    picks_one = trial is not None or maximize is not None or minimize is not None or bool(where)
    if not picks_one and not allow_stale and not isinstance(study, Path) and "/" not in str(study):
        _refuse_stale(best, name, Path(root), storage)
    if ensemble and not picks_one and (best / ENSEMBLE_DIR / CARD_FILE).is_file():
        return load_model(best / ENSEMBLE_DIR, device)
    folder = choose_folder(best, trial=trial, maximize=maximize, minimize=minimize, where=where)
    return load_model(folder, device)


def _refuse_stale(best: Path, name: str, root: Path, storage: str | None) -> None:
    """Refuse a single-objective ``best/`` that holds another trial than its storage's best (when the storage can be
    read; a ``best/`` copied away from its study is not checked)."""
    if not (best / CARD_FILE).is_file():
        return
    from hpo.errors import StudyError
    from hpo.study.access import best_trial, load_study

    try:
        study, _, _ = load_study(name, root, storage)
    except StudyError:
        return
    top = best_trial(study)
    held = read_card(best).get("trial")
    if top is not None and held != top.number:
        raise WeightsError(
            f"{best}: holds trial {held}, but the study's storage says its best trial is {top.number} (a run was "
            "stopped between recording that trial and saving its weights, or they were written on another host); "
            "rerun the same `hpo run` command to repair best/, or pass allow_stale=True (hpo predict --allow-stale) "
            f"to use trial {held} anyway"
        )
