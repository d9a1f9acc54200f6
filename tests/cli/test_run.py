"""End-to-end: the real ``hpo`` command in a subprocess, on a real SQLite file."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import HPO, REPO, run_hpo, tiny_space

pytestmark = pytest.mark.slow


def test_run_then_best_agrees_with_optuna_cli(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(tiny_space(study={"name": "e2e", "n_trials": 3})))
    run = run_hpo(["run", "space.yaml"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3 and "done=3/3" in lines[-1]  # not a terminal: one plain line per trial
    assert "Traceback" not in run.stderr

    best = run_hpo(["best", "--study", "e2e", "--json"], cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    summary = json.loads(best.stdout)
    optuna_cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "optuna"),
            "best-trial",
            "--study-name",
            "e2e",
            "--storage",
            "sqlite:///studies/e2e/study.db",
            "-f",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    reference = json.loads(optuna_cli.stdout)
    assert summary["trial"] == reference["number"] and summary["value"] == reference["value"]
    assert summary["weights_status"] == "ok"
    card = json.loads((tmp_path / "studies" / "e2e" / "best" / "model.json").read_text())
    assert card["trial"] == summary["trial"]

    text = run_hpo(["best", "--study", "e2e"], cwd=tmp_path)
    assert f"trial {summary['trial']}" in text.stdout and "model.pt" in text.stdout
    _check_dashboard_serves(tmp_path, "e2e", n_trials=3)


def _check_dashboard_serves(cwd: Path, study: str, n_trials: int) -> None:
    """`optuna-dashboard sqlite:///studies/<study>/study.db`, as the README says, lists the study."""
    port = _free_port()
    dashboard = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "optuna-dashboard"),
            f"sqlite:///studies/{study}/study.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline or dashboard.poll() is not None:
                    raise
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == [study]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", timeout=5) as r:
            detail = json.load(r)
        assert len(detail["trials"]) == n_trials
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAD_SPACES = [
    ("study: {n_trials: 2}\nparams: {lr: {type: float, low: 0, high: 1, log: true}}\n", "params.lr.low"),
    ("study: {n_trials: 2, metric: val/acc}\n", "study.metric"),
    ("study: {n_trials: 2}\ndata: {path: nope.csv, target: y}\n", "no such data file"),
    ("study: {n_trials: 2}\ndata: {path: three.csv, target: y}\n", "exactly two classes"),
    ("study: [\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_SPACES, ids=[b[1] for b in BAD_SPACES])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "three.csv").write_text("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(9)))
    (tmp_path / "space.yaml").write_text(text)
    result = run_hpo(["run", "space.yaml"], cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "studies").exists()


def test_usage_errors_and_help(tmp_path: Path) -> None:
    assert run_hpo(["run", "missing.yaml"], cwd=tmp_path).returncode == 2
    assert not (tmp_path / "studies").exists()
    assert run_hpo(["run", "--n-trials", "x"], cwd=tmp_path).returncode == 2
    bad_name = run_hpo(["run", str(REPO / "search_spaces" / "default.yaml"), "--study", "../x"], cwd=tmp_path)
    assert bad_name.returncode == 2 and "study name" in bad_name.stderr
    assert not (tmp_path / "studies").exists()
    missing = run_hpo(["best", "--study", "nothing"], cwd=tmp_path)
    assert missing.returncode == 2 and "hpo run" in missing.stderr
    for command in (["--help"], ["run", "--help"], ["best", "--help"]):
        help_text = run_hpo(command, cwd=tmp_path)
        assert help_text.returncode == 0 and "Example" in help_text.stdout and "Exit codes" in help_text.stdout


def _finished(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_rerun_finishes_exactly_n_trials(tmp_path: Path, signum: int) -> None:
    doc = tiny_space(study={"name": "stop", "n_trials": 6}, training={"max_epochs": 15, "batch_size": 32})
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc))
    env = {"PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    import os

    proc = subprocess.Popen(
        [*HPO, "run", "space.yaml"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "studies" / "stop" / "study.db"
    deadline = time.monotonic() + 120
    while _finished(db) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    done = _finished(db)
    assert 1 <= done < 6
    rerun = run_hpo(["run", "space.yaml"], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(db) as con:
        states = dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    assert sum(states.values()) == 6 and set(states) <= {"COMPLETE", "PRUNED"}
