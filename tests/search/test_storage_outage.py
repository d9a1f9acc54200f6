"""Storage outages on a real PostgreSQL 15 server restarted or stopped mid-study: the study rides out a short one
with no extra trial, a long one stops the run with one message, and the ask lock survives both."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from hpo.search.ask_lock import AskLock
from hpo.study.retry import StorageUnavailableError
from hpo.study.storage import open_storage
from tests.conftest import HPO, REPO, tiny_space

pytestmark = pytest.mark.slow
PASSWORD = "pg-Outage-2718"


def _as_postgres(*args: str) -> list[str]:
    return list(args) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]


@dataclass(frozen=True)
class _Server:
    """A throwaway PostgreSQL server on a loopback port, with password authentication, that tests stop and start."""

    url: str
    data: Path
    options: str
    log: Path

    def pg_ctl(self, *args: str) -> None:
        # The server's output goes to its log: a server holding our pipes would make this wait forever.
        command = ["pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w", *args]
        subprocess.run(_as_postgres(*command), check=True, capture_output=True, timeout=120)

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        if subprocess.run(_as_postgres("pg_ctl", "-D", str(self.data), "status"), capture_output=True).returncode:
            self.pg_ctl("start")


@pytest.fixture(scope="module")
def postgres() -> Iterator[_Server]:
    if shutil.which("initdb") is None:
        pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are not on PATH; .ci/run installs them")
    base = Path(tempfile.mkdtemp(prefix="hpo-pg-outage-"))
    base.chmod(0o755)
    (base / "pw").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pw", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = base / "data"
    subprocess.run(
        _as_postgres("initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={base / 'pw'}"),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=100"
    server = _Server(f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/postgres", data, options, base / "log")
    server.start()
    try:
        yield server
    finally:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(postgres: _Server) -> Iterator[_Server]:
    """The module's server, running again after the test whatever the test did to it."""
    postgres.start()
    yield postgres
    postgres.start()


def _space(tmp_path: Path, name: str, n_trials: int, epochs: int) -> Path:
    doc = tiny_space(
        study={"name": name, "n_trials": n_trials, "heartbeat_interval": 1, "grace_period": 4},
        training={"max_epochs": epochs, "batch_size": 32},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(tmp_path: Path, url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "HPO_STORAGE": url}
    env.pop("HPO_STORAGE_RETRY", None)
    return subprocess.Popen(
        [*HPO, "run", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _counts(url: str, name: str) -> Counter[TrialState]:
    """Trials by state (none while the study or the server is not there)."""
    try:
        study = optuna.load_study(study_name=name, storage=url)
        return Counter(t.state for t in study.get_trials(deepcopy=False))
    except Exception:
        return Counter()


def _wait_for(predicate: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 240) -> None:
    """Poll ``predicate``; fail with the run's output if it ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            out, err = process.communicate(timeout=60)
            raise AssertionError(f"exit code {process.returncode}; stdout: {out[-2000:]!r}; stderr: {err[-4000:]!r}")
        time.sleep(0.2)


def test_a_study_rides_out_a_restart_and_a_stop(tmp_path: Path, server: _Server) -> None:
    n_trials = 6
    space = _space(tmp_path, "outage", n_trials, epochs=60)
    run = _run(tmp_path, server.url, str(space), "--workers", "2")
    _wait_for(lambda: (c := _counts(server.url, "outage"))[TrialState.COMPLETE] >= 1 and c[TrialState.RUNNING], run)
    server.restart()  # a few hundred milliseconds away
    done = _counts(server.url, "outage")[TrialState.COMPLETE]
    _wait_for(lambda: (c := _counts(server.url, "outage"))[TrialState.COMPLETE] > done and c[TrialState.RUNNING], run)
    server.stop()
    time.sleep(6)  # longer than the heartbeat grace period: every heartbeat looks stale when it comes back
    server.start()
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "Traceback" not in out + err and "error:" not in out + err and PASSWORD not in out + err
    assert "Falling back to a slower alternative" not in out + err  # Optuna's warning about a query that is retried
    study = optuna.load_study(study_name="outage", storage=server.url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * n_trials  # no failed, no extra trial
    assert f"Study 'outage': {n_trials}/{n_trials} trials finished" in out


def test_a_storage_that_stays_away_stops_the_run_with_one_message(tmp_path: Path, server: _Server) -> None:
    space = _space(tmp_path, "away", 2, epochs=60)
    run = _run(tmp_path, server.url, str(space), "--storage-retry", "3")
    _wait_for(lambda: _counts(server.url, "away")[TrialState.RUNNING] >= 1, run)
    server.stop()
    out, err = run.communicate(timeout=300)
    server.start()
    assert run.returncode == 2, err
    assert "Traceback" not in out + err and PASSWORD not in out + err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: postgresql+psycopg://postgres:***@127.0.0.1:"), err
    assert "lost the connection to the study storage" in errors[0] and "--storage-retry" in errors[0]
    # The trial it was running is left RUNNING: its heartbeat goes stale and the next run fails and retries it.
    assert _counts(server.url, "away")[TrialState.RUNNING] == 1
    rerun = _run(tmp_path, server.url, str(space))
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    study = optuna.load_study(study_name="away", storage=server.url)
    assert Counter(t.state for t in study.trials) == Counter({TrialState.COMPLETE: 2, TrialState.FAIL: 1})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_storage_calls_wait_for_a_restart_and_judge_no_trial_stale(server: _Server) -> None:
    storage = open_storage(server.url, create=True, heartbeat_interval=1, grace_period=30)
    study = optuna.create_study(storage=storage, study_name="calls")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    server.restart()
    trial.report(0.5, 0)  # the pooled connections died with the server: replaced, not an error
    study.tell(trial, 0.5)
    again = study.ask()
    storage.record_heartbeat(again._trial_id)
    server.stop()
    threading.Timer(2, server.start).start()
    again.set_user_attr("after", "a stop")  # deferred (hpo.study.retry) ...
    storage.flush()  # ... and written here, waiting for the server to come back
    with sqlalchemy.create_engine(server.url).begin() as connection:  # as if its worker went quiet an hour ago
        connection.exec_driver_sql("UPDATE trial_heartbeats SET heartbeat = now() - interval '1 hour'")
    fresh = open_storage(server.url, create=False, heartbeat_interval=1, grace_period=30)
    # This process never saw the stop, but the server says it just started: every worker's heartbeat stopped with
    # it, so no trial is judged dead before they have had a grace period to send one again.
    assert fresh._get_stale_trial_ids(study._study_id) == []  # type: ignore[attr-defined]
    study = optuna.load_study(study_name="calls", storage=server.url)
    assert [(t.state, t.user_attrs) for t in study.trials] == [
        (TrialState.COMPLETE, {}),
        (TrialState.RUNNING, {"after": "a stop"}),
    ]


def test_the_ask_lock_survives_a_restart(server: _Server) -> None:
    first, second = AskLock(server.url, "lock", retry_seconds=30), AskLock(server.url, "lock", retry_seconds=30)
    first.acquire()
    waiting = threading.Thread(target=second.acquire)
    waiting.start()  # blocks on the server's lock
    server.restart()  # frees it: the second worker's connection is gone too, and it takes the lock again
    waiting.join(timeout=60)
    assert not waiting.is_alive()
    first.release()
    assert first.lost and not first.exclusive  # it must count the budget as if there were no lock
    second.release()
    assert not second.lost and second.exclusive
    first.acquire()
    first.release()
    assert not first.lost
    server.stop()
    impatient = AskLock(server.url, "lock", retry_seconds=1)
    with pytest.raises(StorageUnavailableError, match=r"\*\*\*@127\.0\.0\.1.*--storage-retry") as caught:
        impatient.acquire()
    assert PASSWORD not in str(caught.value)
