"""Scale-out: parallel workers on SQLite and on a real PostgreSQL 15 server, crashes, and no leaked passwords."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpo.study.storage import TRIAL_STATE_INDEX
from tests.conftest import HPO, REPO, tiny_space

pytestmark = pytest.mark.slow

#: Epochs of the trials that a test stops or kills mid-way: 1-3 seconds each.
EPOCHS = 150
PASSWORD = "pg-Secret-4711"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*args: str) -> list[str]:
    return list(args) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a loopback port, with password authentication."""
    if shutil.which("initdb") is None:
        pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are not on PATH; .ci/run installs them")
    base = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    base.chmod(0o755)
    (base / "pw").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pw", "postgres")
    port = _free_port()
    data = base / "data"
    subprocess.run(
        _as_postgres("initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={base / 'pw'}"),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        _as_postgres("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _space(tmp_path: Path, name: str, n_trials: int, epochs: int) -> Path:
    doc = tiny_space(
        study={
            "name": name,
            "n_trials": n_trials,
            "pruner": {"name": "none"},
            "heartbeat_interval": 1,
            "grace_period": 4,
        },
        training={"max_epochs": epochs, "batch_size": 32},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _env(storage: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    if storage:
        env["HPO_STORAGE"] = storage
    return env


def _workers(tmp_path: Path, space: Path, storage: str, count: int) -> list[subprocess.Popen]:
    """``count`` independent ``hpo run`` processes on one study in ``storage`` (as on several machines)."""
    args = [*HPO, "run", str(space), "--threads", "1"]
    return [
        subprocess.Popen(
            args, cwd=tmp_path, env=_env(storage), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]


def _check_study(study: optuna.Study, root: Path, n_trials: int) -> None:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == n_trials
    assert states.count(TrialState.RUNNING) == 0 and states.count(TrialState.WAITING) == 0
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    runs = sorted(p.name for p in (root / study.study_name / "tb").iterdir())
    assert runs == [f"trial_{n:04d}" for n in sorted(numbers)]  # one TensorBoard run per trial
    best = root / study.study_name / "best"
    card = json.loads((best / "model.json").read_text())
    assert card["trial"] == study.best_trial.number and card["value"] == study.best_trial.value
    assert hashlib.sha256((best / "model.pt").read_bytes()).hexdigest() == card["weights"]["sha256"]
    torch.load(best / "model.pt")


def _leaks(texts: list[str], root: Path) -> list[str]:
    found = [f"output {i}" for i, text in enumerate(texts) if PASSWORD in text]
    for path in root.rglob("*"):
        if path.is_file() and PASSWORD.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_four_workers_on_postgresql_share_one_study(tmp_path: Path, postgres_url: str) -> None:
    n_trials = 8
    space = _space(tmp_path, "pg4", n_trials, epochs=2)
    procs = _workers(tmp_path, space, postgres_url, 4)
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    study = optuna.load_study(study_name="pg4", storage=postgres_url)
    _check_study(study, tmp_path / "studies", n_trials)
    # Four workers opening the study at once made hpo's trial-state index (once: they raced for it).
    engine = sqlalchemy.create_engine(postgres_url)
    names = [ix["name"] for ix in sqlalchemy.inspect(engine).get_indexes("trials")]
    engine.dispose()
    assert names.count(TRIAL_STATE_INDEX) == 1
    assert _leaks([o for pair in outputs for o in pair], tmp_path / "studies") == []


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _wait_for(predicate, timeout: float = 120, process: subprocess.Popen | None = None) -> None:
    """Poll ``predicate``; fail with ``process``'s output if it ends first or when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        ended = process is not None and process.poll() is not None
        if ended or time.monotonic() > deadline:
            detail = ""
            if process is not None:
                if not ended:
                    process.kill()
                out, err = process.communicate(timeout=30)
                detail = f"; exit code {process.returncode}, stdout: {out[-1500:]!r}, stderr: {err[-3000:]!r}"
            raise AssertionError(f"timed out waiting{detail}" if not ended else f"the process ended first{detail}")
        time.sleep(0.2)


def _counts(storage: str, name: str) -> Counter[TrialState]:
    """Trials by state, in one read (0 of each before the study exists)."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:
        return Counter()
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def _mid_study(storage: str, name: str, running: int) -> Callable[[], bool]:
    def check() -> bool:
        counts = _counts(storage, name)
        return counts[TrialState.COMPLETE] >= 1 and counts[TrialState.RUNNING] >= running

    return check


def _count(storage: str, name: str, state: TrialState) -> int:
    return _counts(storage, name)[state]


def _stop_a_running_trial(
    storage: str, name: str, pids: list[int], process: subprocess.Popen | None = None
) -> tuple[int, int]:
    """SIGSTOP a worker among ``pids`` in the middle of a trial; return (its process id, the trial's number).

    A trial is RUNNING from the moment it is asked for, a little before its worker records the ``worker``
    attribute, so this polls until one of ``pids`` has. The worker is stopped first and the trial's state read
    after: a trial that ended in between (its worker was about to tell) would leave nothing for the test to check,
    so then the worker is continued and another trial picked. The caller kills or continues the stopped worker.
    """
    found: list[tuple[int, int]] = []

    def check() -> bool:
        study = optuna.load_study(study_name=name, storage=storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for trial in sorted(running, key=lambda t: t.datetime_start, reverse=True):
            worker = trial.user_attrs.get("worker")
            pid = int(worker.rsplit(":", 1)[1]) if worker else -1
            if pid not in pids:
                continue
            os.kill(pid, signal.SIGSTOP)
            try:
                still_running = study.get_trials(deepcopy=False)[trial.number].state == TrialState.RUNNING
            except BaseException:
                os.kill(pid, signal.SIGCONT)
                raise
            if still_running:
                found.append((pid, trial.number))
                return True
            os.kill(pid, signal.SIGCONT)
        return False

    _wait_for(check, timeout=120, process=process)
    return found[0]


def _check_chaos(study: optuna.Study, root: Path, n_trials: int) -> None:
    _check_study(study, root, n_trials)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert failed, "the killed worker's trial should be marked failed"
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t): t for t in study.trials}
    for trial in failed:
        assert trial.number in retried, f"failed trial {trial.number} was not re-run"
        rerun = retried[trial.number]
        assert rerun.params == trial.params and rerun.state == TrialState.COMPLETE


def test_sqlite_workers_survive_a_killed_worker(tmp_path: Path) -> None:
    n_trials = 6
    space = _space(tmp_path, "chaos", n_trials, epochs=EPOCHS)
    db = f"sqlite:///{tmp_path / 'studies' / 'chaos' / 'study.db'}"
    parent = subprocess.Popen(
        [*HPO, "run", str(space), "--workers", "3"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(_mid_study(db, "chaos", running=2))
    workers = _children(parent.pid)
    assert len(workers) == 3
    os.kill(_stop_a_running_trial(db, "chaos", workers, process=parent)[0], signal.SIGKILL)
    _out, err = parent.communicate(timeout=300)
    assert parent.returncode == 0, err
    assert re.search(r"worker \d ended: killed by SIGKILL", err), err
    _check_chaos(optuna.load_study(study_name="chaos", storage=db), tmp_path / "studies", n_trials)


def test_postgresql_worker_killed_mid_trial(tmp_path: Path, postgres_url: str) -> None:
    n_trials = 6
    space = _space(tmp_path, "pgchaos", n_trials, epochs=EPOCHS)
    procs = _workers(tmp_path, space, postgres_url, 3)
    _wait_for(_mid_study(postgres_url, "pgchaos", running=2))
    victim, _number = _stop_a_running_trial(postgres_url, "pgchaos", [p.pid for p in procs])
    os.kill(victim, signal.SIGKILL)
    outputs = [p.communicate(timeout=300) for p in procs]
    assert sorted(p.returncode for p in procs) == [-signal.SIGKILL, 0, 0], outputs
    _check_chaos(optuna.load_study(study_name="pgchaos", storage=postgres_url), tmp_path / "studies", n_trials)
    assert _leaks([o for pair in outputs for o in pair], tmp_path / "studies") == []


def test_password_never_appears_in_errors(tmp_path: Path) -> None:
    space = _space(tmp_path, "nope", 2, epochs=1)
    url = f"postgresql+psycopg://hpo:{PASSWORD}@127.0.0.1:{_free_port()}/hpo"
    for args, env in (
        ([*HPO, "run", str(space), "--storage", url], _env()),
        ([*HPO, "run", str(space)], _env(url)),
        ([*HPO, "best", "--study", "nope"], _env(url)),
    ):
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "***" in result.stderr and PASSWORD not in result.stdout + result.stderr


def test_sigint_to_workers_then_rerun_finishes_exactly_n_trials(tmp_path: Path) -> None:
    n_trials = 6
    space = _space(tmp_path, "stopw", n_trials, epochs=EPOCHS)  # seconds per trial: the signal lands mid-study
    db = f"sqlite:///{tmp_path / 'studies' / 'stopw' / 'study.db'}"
    parent = subprocess.Popen(
        [*HPO, "run", str(space), "--workers", "2"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _count(db, "stopw", TrialState.COMPLETE) >= 1, timeout=240, process=parent)
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=300)
    assert parent.returncode == 130, err
    study = optuna.load_study(study_name="stopw", storage=db)
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 0  # the running trials finished
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) < n_trials
    rerun = subprocess.run(
        [*HPO, "run", str(space), "--workers", "2"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="stopw", storage=db)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * n_trials


def test_worker_paused_past_the_grace_period_drops_its_trial_and_goes_on(tmp_path: Path, postgres_url: str) -> None:
    # A worker stopped mid-trial (a laptop asleep, a suspended job) for longer than grace_period: another worker
    # fails its trial and queues a retry; when the paused worker wakes up and finishes, Optuna refuses its outcome.
    n_trials = 6
    space = _space(tmp_path, "paused", n_trials, epochs=EPOCHS)
    procs = _workers(tmp_path, space, postgres_url, 2)
    _wait_for(_mid_study(postgres_url, "paused", running=2))
    victim, number = _stop_a_running_trial(postgres_url, "paused", [p.pid for p in procs])
    study = optuna.load_study(study_name="paused", storage=postgres_url)
    assert study.get_trials(deepcopy=False)[number].state == TrialState.RUNNING  # stopped mid-trial
    try:
        _wait_for(lambda: study.get_trials(deepcopy=False)[number].state == TrialState.FAIL, timeout=180)
    finally:
        os.kill(victim, signal.SIGCONT)
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    (paused_err,) = [err for p, (_out, err) in zip(procs, outputs, strict=True) if p.pid == victim]
    assert f"trial {number} was marked failed by another worker while this one was still running it" in paused_err
    assert "Traceback" not in paused_err
    _check_chaos(optuna.load_study(study_name="paused", storage=postgres_url), tmp_path / "studies", n_trials)
