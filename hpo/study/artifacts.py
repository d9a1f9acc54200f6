"""The best trial's files as Optuna artifacts (``studies/<study>/artifacts/``), so optuna-dashboard lists them."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from hpo.paths import StudyPaths

__all__ = [
    "ARTIFACTS_ATTR",
    "ARTIFACTS_ERROR_ATTR",
    "artifact_store",
    "artifacts_dir",
    "attach_files",
    "read_attached_files",
]

#: The user attribute of a trial that maps each attached file name to its artifact id.
ARTIFACTS_ATTR = "artifacts"
#: The user attribute of a trial whose files could not be attached: why.
ARTIFACTS_ERROR_ATTR = "artifacts_error"


def artifacts_dir(paths: StudyPaths) -> Path:
    """``studies/<study>/artifacts/``: give it to ``optuna-dashboard --artifact-dir``."""
    return paths.study_dir / "artifacts"


def artifact_store(paths: StudyPaths) -> FileSystemArtifactStore:
    """The study's artifact store (the folder is created if needed)."""
    folder = artifacts_dir(paths)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(folder)


def attach_files(trial: optuna.Trial, files: Mapping[str, bytes], paths: StudyPaths) -> dict[str, str]:
    """Upload ``files`` (name -> content) as artifacts of the running ``trial``; returns name -> artifact id.

    Optuna only attaches artifacts to a trial that has not finished yet, so this runs inside the objective. The ids
    are also kept in the trial's ``artifacts`` user attribute.

    Raises:
        OSError: the artifact folder cannot be written.
    """
    store = artifact_store(paths)
    # upload_artifact records an artifact on the trial before it writes the file: check first that the folder takes
    # files, so that a read-only folder leaves no listed-but-missing artifacts behind.
    with tempfile.NamedTemporaryFile(dir=artifacts_dir(paths), prefix=".probe-"):
        pass
    ids: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hpo-artifacts-") as tmp:
        for name, content in files.items():
            path = Path(tmp) / name
            path.write_bytes(content)
            # mimetypes guesses .pt as a SNES page table; the dashboard would serve the weights as that
            mimetype = "application/octet-stream" if path.suffix == ".pt" else None
            ids[name] = upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mimetype
            )
    trial.set_user_attr(ARTIFACTS_ATTR, ids)
    return ids


def read_attached_files(trial: optuna.trial.FrozenTrial, paths: StudyPaths) -> dict[str, bytes] | None:
    """The files attached to ``trial`` (name -> content) from this host's artifact store; None when any is missing
    (the trial ran on another host, or the store was deleted)."""
    ids = trial.user_attrs.get(ARTIFACTS_ATTR)
    if not isinstance(ids, dict) or not ids:
        return None
    store = FileSystemArtifactStore(artifacts_dir(paths))
    files: dict[str, bytes] = {}
    for name, artifact_id in ids.items():
        try:
            with store.open_reader(str(artifact_id)) as handle:
                files[str(name)] = handle.read()
        except (OSError, optuna.artifacts.exceptions.ArtifactNotFound):
            return None
    return files
