"""hpo.views.serving, ``hpo dashboard`` and ``hpo tensorboard``: loopback by default, clear port errors, clean stops."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.errors import StudyError
from hpo.views.serving import ServeError, binds_all_interfaces, free_port, start_dashboard, start_tensorboard
from tests.conftest import HPO, REPO


def test_binds_all_interfaces() -> None:
    assert binds_all_interfaces("0.0.0.0") and binds_all_interfaces("::") and binds_all_interfaces("")
    assert not binds_all_interfaces("127.0.0.1") and not binds_all_interfaces("localhost")


@pytest.mark.parametrize("start", [start_dashboard, start_tensorboard])
def test_busy_port_names_a_free_one(tiny_study: Path, start: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=rf"127\.0\.0\.1:{port} is already in use") as caught:
            start("tiny", root=tiny_study, port=port)
    suggested = int(str(caught.value).split("--port ")[1].split(",")[0])
    assert suggested != port
    with socket.socket() as check:
        check.bind(("127.0.0.1", suggested))  # the alternative really is free


def test_free_port_and_missing_study(tiny_study: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
    with pytest.raises(StudyError, match="no study named 'nope'"):
        start_dashboard("nope", root=tiny_study, storage=f"sqlite:///{tiny_study}/tiny/study.db")
    with pytest.raises(StudyError, match="no TensorBoard runs"):
        start_tensorboard("tiny", root=tmp_path)


@contextmanager
def serving(args: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Start ``hpo <args> --json`` and yield the process and the JSON line saying where it listens."""
    # faulthandler: a server that does not stop is made to print every thread's stack (see stop_server)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [*HPO, *args, "--json"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a shell starts a background job (`make test &`) with SIGINT ignored, and every
        # process it starts would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop_server(proc: subprocess.Popen[str], signum: int) -> str:
    """Send ``signum`` and wait for the server to exit; one that is still running after 60 s fails the test with the
    stack of each of its threads (and its SIGINT disposition as inherited, a common cause)."""
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
            masks = [line.strip() for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the server did not stop on signal {signum} within 60 s ({masks}); its stacks:\n{err[-8000:]}")
    assert proc.returncode == 0, err
    return err


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow
def test_tensorboard_hparams_lists_every_trial_with_its_optuna_value(tiny_study: Path) -> None:
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_study}/tiny/study.db")
    expected = {}
    for trial in study.trials:
        # A pruned trial's value in Optuna is the last value it reported; its hp_metric is the same number.
        expected[f"trial_{trial.number:04d}"] = trial.value
    with serving(["tensorboard", "--study", "tiny", "--root", str(tiny_study), "--port", "0"], tiny_study) as (
        proc,
        where,
    ):
        assert where["host"] == "127.0.0.1" and where["url"].startswith(f"http://127.0.0.1:{where['port']}/")
        body = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        }
        deadline = time.monotonic() + 60
        while True:  # TensorBoard loads the runs in the background
            groups = _post(f"http://127.0.0.1:{where['port']}/data/plugin/hparams/session_groups", body)
            if groups.get("totalSize") == len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        sessions = {s["name"]: s for g in groups["sessionGroups"] for s in g["sessions"]}
        assert sorted(sessions) == sorted(expected)
        for name, session in sessions.items():
            metrics = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
            assert math.isclose(metrics["hp_metric"], expected[name], rel_tol=1e-6), name
            assert {"hp/auroc", "hp/loss", "hp/accuracy", "hp/f1", "hp/average_precision"} <= set(metrics)
        assert "Stopped TensorBoard" in stop_server(proc, signal.SIGINT)


@pytest.mark.slow
def test_dashboard_on_all_interfaces_warns_and_stops_on_sigterm(tiny_study: Path) -> None:
    args = ["dashboard", "--study", "tiny", "--root", str(tiny_study), "--host", "0.0.0.0", "--port", "0"]
    with serving(args, tiny_study) as (proc, where):
        with urllib.request.urlopen(f"http://127.0.0.1:{where['port']}/api/studies", timeout=30) as response:
            studies = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tiny"]
        err = stop_server(proc, signal.SIGTERM)
    assert "warning: optuna-dashboard listens on all interfaces" in err and "Stopped optuna-dashboard" in err


def test_dashboard_serves_the_study_artifact_store(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    shutil.rmtree(root / "tiny" / "artifacts")  # written by hpo run whenever a trial becomes the best
    without = start_dashboard("tiny", root=root, port=0)
    without.close()
    assert without.artifact_dir is None and not (root / "tiny" / "artifacts").exists()

    artifacts = root / "tiny" / "artifacts"
    artifacts.mkdir()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    note = tmp_path / "note.txt"
    note.write_text("hello from the study")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifacts)),
        file_path=str(note),
        study_or_trial=study,
    )
    server = start_dashboard("tiny", root=root, port=0)
    assert server.artifact_dir == artifacts and server.host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}/artifacts/{study._study_id}/{artifact_id}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == b"hello from the study"
    finally:
        server.close()
        thread.join(timeout=10)
    assert not thread.is_alive()
