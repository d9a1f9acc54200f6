from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import download_artifact, get_all_artifact_meta

from hpo.paths import StudyPaths
from hpo.study.artifacts import ARTIFACTS_ATTR, artifact_store, artifacts_dir

BEST_FILES = ["calibration.json", "model.json", "model.pt", "reliability.png"]


def _study(root: Path) -> optuna.Study:
    return optuna.load_study(study_name="inf", storage=StudyPaths(root, "inf").default_storage_url)


def test_best_trial_carries_its_files_as_artifacts(inference_study: Path, tmp_path: Path) -> None:
    paths = StudyPaths(inference_study, "inf")
    study = _study(inference_study)
    metas = get_all_artifact_meta(study.best_trial, storage=study._storage)
    assert sorted(m.filename for m in metas) == BEST_FILES
    assert {m.filename: m.mimetype for m in metas}["model.pt"] == "application/octet-stream"
    assert study.best_trial.user_attrs[ARTIFACTS_ATTR] == {m.filename: m.artifact_id for m in metas}
    for meta in metas:
        target = tmp_path / meta.filename
        download_artifact(artifact_store=artifact_store(paths), artifact_id=meta.artifact_id, file_path=str(target))
        assert target.read_bytes() == (paths.best / meta.filename).read_bytes()
    # only trials that beat the best so far when they finished carry artifacts
    best_so_far = None
    for trial in study.trials:
        improved = best_so_far is None or trial.value > best_so_far
        assert (ARTIFACTS_ATTR in trial.user_attrs) == improved
        best_so_far = trial.value if improved else best_so_far
    assert len(list(artifacts_dir(paths).iterdir())) == 4 * sum(ARTIFACTS_ATTR in t.user_attrs for t in study.trials)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.mark.slow
def test_optuna_dashboard_lists_and_serves_the_best_trials_artifacts(inference_study: Path) -> None:
    paths = StudyPaths(inference_study, "inf")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen(
        [
            str(dashboard),
            paths.default_storage_url,
            "--artifact-dir",
            str(artifacts_dir(paths)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                meta = json.loads(_get(f"{base}/api/meta"))
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "optuna-dashboard did not start"
                time.sleep(0.25)
        assert meta["artifact_is_available"] is True
        studies = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "inf")
        detail = json.loads(_get(f"{base}/api/studies/{study_id}"))
        best = detail["best_trials"][0]
        assert best["number"] == json.loads((paths.best / "model.json").read_text())["trial"]
        listed = {a["filename"]: a for a in best["artifacts"]}
        assert sorted(listed) == BEST_FILES
        for name in ("model.pt", "model.json"):
            body = _get(f"{base}/artifacts/{study_id}/{best['trial_id']}/{listed[name]['artifact_id']}")
            assert body == (paths.best / name).read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unwritable_artifact_folder_is_recorded_and_the_trial_still_counts(tmp_path: Path) -> None:
    import subprocess as sp

    from hpo.config.experiment import parse_experiment
    from hpo.search.run import run_study
    from hpo.study.artifacts import ARTIFACTS_ERROR_ATTR
    from tests.conftest import inference_space

    root = tmp_path / "studies"
    folder = artifacts_dir(StudyPaths(root, "inf"))
    folder.mkdir(parents=True)
    as_root = os.geteuid() == 0
    if as_root:
        sp.run(["chattr", "+i", str(folder)], check=True)  # root ignores permissions
    else:
        folder.chmod(0o555)
    try:
        doc = inference_space(study={"name": "inf", "n_trials": 1})
        run_study(parse_experiment(doc, tmp_path / "space.yaml"), root=root)
    finally:
        if as_root:
            sp.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)
    trial = _study(root).best_trial
    assert "cannot be written" in trial.user_attrs[ARTIFACTS_ERROR_ATTR]
    assert (root / "inf" / "best" / "calibration.json").exists()
    assert list(folder.iterdir()) == []
    assert get_all_artifact_meta(trial, storage=_study(root)._storage) == []  # nothing listed that is not there
