"""Chaos: ``hpo run`` is SIGKILLed at random moments of a study (and exactly between Optuna's tell and the promotion
of ``best/``), then run again; after every run that ends, ``best/`` holds the storage's best trial, intact, with no
temporary files left, and the study has exactly its budget of finished trials.

Starting Python with torch and Lightning takes seconds, far longer than one tiny trial, so most runs here are forked
from a harness process that has imported hpo's CLI once (``_FORK_SERVER``): each child is a separate process that
runs hpo's real ``main`` with the ``run`` arguments, and is killed by a real SIGKILL to its process group. The
harness changes nothing in hpo, except for the deterministic kills, where the child kills its own process at one
exact point (``publish`` about to promote the storage's new best trial; Optuna's ``ask`` just returned): a real
signal at a real point, not a mock of the behaviour under test. One repair is checked with a plain
``python -m hpo.cli run`` in a fresh Python as well.

Delays are drawn from a seeded generator (``HPO_CHAOS_SEED`` picks another seed); every failure message shows the
seed and what each run did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import sqlalchemy.exc
import yaml
from optuna.trial import TrialState
from sklearn.metrics import roc_auc_score

import hpo
from tests.conftest import REPO, run_hpo, tiny_space
from tests.search.test_workers import _children, _wait_for

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("HPO_CHAOS_SEED", "20240518"))
DATASET = REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

_FORK_SERVER = r'''
"""Import hpo's CLI and training stack once, then fork one `hpo` process per request read from stdin."""
import json
import os
import signal
import sys

import alembic.command  # noqa: F401 - what Optuna's SQLite storage and a trial's TensorBoard run load on first use
import hpo.cli._progress  # noqa: F401
import hpo.cli.run  # noqa: F401 - the `run` command
import hpo.search.run  # noqa: F401 - torch, Lightning, Optuna
import hpo.search.promotion  # noqa: F401
import hpo.search.workers  # noqa: F401
import hpo.train.objective  # noqa: F401
import optuna.storages._rdb.storage  # noqa: F401
import sqlalchemy.dialects.sqlite  # noqa: F401
from hpo.cli import main
from torch.utils.tensorboard import SummaryWriter  # noqa: F401


def kill_between_tell_and_promotion(trial=None):
    """SIGKILL this process when publish() is called for the storage's best trial (``trial``, if given) and best/
    does not hold it yet: Optuna has recorded the trial, best/ has not been touched."""
    from hpo.best.folder import CARD_FILE, read_card
    from hpo.search.promotion import BestModelPublisher
    from hpo.study.access import best_trial

    original = BestModelPublisher.publish

    def publish(self, study, trial_number):
        best = best_trial(study)
        if best is not None and best.number == trial_number and trial in (None, trial_number):
            card = self.paths.best / CARD_FILE
            if not card.is_file() or read_card(self.paths.best).get("trial") != trial_number:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(self, study, trial_number)

    BestModelPublisher.publish = publish


def kill_between_ask_and_heartbeat(trial=None):
    """SIGKILL this process as soon as Optuna has created its first trial (marked running), before the trial's
    heartbeat starts."""
    import optuna

    original = optuna.Study.ask

    def ask(self, *args, **kwargs):
        original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    optuna.Study.ask = ask


KILLS = {"promotion": kill_between_tell_and_promotion, "ask": kill_between_ask_and_heartbeat}


def child(request):
    os.setsid()  # its own process group, which the test kills
    os.chdir(request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if request.get("kill_at"):
        KILLS[request["kill_at"]](request.get("kill_trial"))
    code = 1
    try:
        main(args=request["argv"], prog_name="hpo")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(request)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
'''


class _ForkServer:
    """Starts ``hpo`` processes forked from the harness; one at a time."""

    def __init__(self, folder: Path) -> None:
        script = folder / "fork_server.py"
        script.write_text(_FORK_SERVER, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        env.pop("HPO_STORAGE", None)  # the studies live in their SQLite files under tmp_path
        self.process = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.runs = 0
        self.current: _Run | None = None

    def start(self, argv: list[str], cwd: Path, *, kill_at: str | None = None, kill_trial: int | None = None) -> _Run:
        """Start ``hpo <argv>`` in ``cwd``; its output goes to a log file in ``cwd``. ``kill_at`` ("promotion",
        "ask"): the process kills itself there (see ``_FORK_SERVER``), at trial ``kill_trial`` if given."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stop_current()
        self.runs += 1
        log = cwd / f"run_{self.runs:02d}.log"
        request = {
            "argv": argv,
            "cwd": str(cwd),
            "log": str(log),
            "kill_at": kill_at,
            "kill_trial": kill_trial,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, f"the fork server ended (exit code {self.process.poll()})"
        self.current = _Run(self, int(json.loads(reply)["pid"]), log)
        return self.current

    def stop_current(self) -> None:
        """Kill the last run (and its workers) if a failed test left it running."""
        if self.current is not None and self.current.returncode is None:
            self.current.kill(_children(self.current.pid))
            self.current.wait()

    def close(self) -> None:
        assert self.process.stdin is not None
        try:
            self.stop_current()
        finally:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise


class _Run:
    """One forked ``hpo`` process."""

    def __init__(self, server: _ForkServer, pid: int, log: Path) -> None:
        self.server = server
        self.pid = pid
        self.log = log
        self.returncode: int | None = None

    def kill(self, workers: Sequence[int] = ()) -> None:
        """SIGKILL the workers' process groups (each has its own session), then this process's group."""
        for pid in [*workers, self.pid]:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
                os.killpg(pid, signal.SIGKILL)

    def wait_for_data(self) -> None:
        """Return once it has read the data (what comes next: the study is opened, best/ reconciled, trials run),
        or ended."""
        _wait_for(lambda: self.output().startswith("Data ") or not _alive(self.pid), timeout=120)

    def wait(self) -> int:
        """Its exit code (negative: killed by that signal)."""
        if self.returncode is None:
            assert self.server.process.stdout is not None
            reply = self.server.process.stdout.readline()
            assert reply, f"the fork server ended (exit code {self.server.process.poll()})"
            self.returncode = int(json.loads(reply)["returncode"])
        return self.returncode

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="module")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ForkServer]:
    server = _ForkServer(tmp_path_factory.mktemp("fork_server"))
    try:
        yield server
    finally:
        server.close()


def _write_space(
    folder: Path, name: str, n_trials: int, study: dict[str, Any] | None = None, params: dict[str, Any] | None = None
) -> Path:
    """A tiny study (a fraction of a second per trial) whose killed trials are failed and retried soon."""
    doc = tiny_space(
        study={
            "name": name,
            "n_trials": n_trials,
            "heartbeat_interval": 1,
            "grace_period": 2,  # a killed run's trial is failed (and re-run) soon after the next run starts
            "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
            **(study or {}),
        },
        training={"max_epochs": 4, "batch_size": 128},
        params={"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}, **(params or {})},
    )  # slow learners get pruned
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _study(root: Path, name: str) -> optuna.Study | None:
    """The study as its SQLite file has it now, read without writing to it (no table is created or stamped: a run
    killed while creating the file must be left for hpo to finish); None when it does not hold the study (yet)."""
    database = root / name / "study.db"
    if not database.is_file():
        return None
    try:
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{database}", skip_compatibility_check=True, skip_table_creation=True
        )
        return optuna.load_study(study_name=name, storage=storage)
    except (KeyError, sqlalchemy.exc.SQLAlchemyError):
        return None  # killed before the study was created in its database


def _finished(root: Path, name: str) -> int:
    study = _study(root, name)
    return 0 if study is None else len(study.get_trials(deepcopy=False, states=FINISHED))


def _card(best: Path) -> dict[str, Any]:
    return json.loads((best / "model.json").read_text(encoding="utf-8"))


def _leftovers(study_dir: Path) -> list[str]:
    """Temporary files and folders under the study folder: a promotion's ``.best-new-*``/``.best-old-*``, hidden
    temporary files, a SQLite rollback journal."""
    found = []
    for path in study_dir.rglob("*"):
        name = path.name
        if name == ".best.lock":
            continue
        if name.startswith(".") or name.endswith(("-journal", ".tmp")):
            found.append(str(path.relative_to(study_dir)))
    return sorted(found)


def _check_intact(root: Path, name: str, context: str) -> None:
    """What holds even right after a kill: best/ (if any) is one whole trial's files, of a trial that completed."""
    best = root / name / "best"
    if not (best / "model.json").exists():
        return
    card = _card(best)
    digest = hashlib.sha256((best / "model.pt").read_bytes()).hexdigest()
    assert digest == card["weights"]["sha256"], f"best/ is torn after a kill: sha256 mismatch\n{context}"
    study = _study(root, name)
    assert study is not None, f"best/ exists without a study\n{context}"
    trial = study.trials[card["trial"]]
    assert trial.state == TrialState.COMPLETE and trial.value == card["value"], (
        f"best/ holds trial {card['trial']}, which the storage has as {trial.state.name} value {trial.value}\n{context}"
    )


def _check_settled(root: Path, name: str, budget: int, context: str, *, final: bool = True) -> None:
    """What holds after a run that ended normally: exactly ``budget`` finished trials (and, when it ran the study to
    its end, none left running or queued), best/ holds the storage's best trial with matching weights, loads and
    reproduces its value, no temporary files."""
    study = _study(root, name)
    assert study is not None, f"no study after a run that ended normally\n{context}"
    states = [t.state for t in study.get_trials(deepcopy=False)]
    finished = sum(states.count(s) for s in FINISHED)
    assert finished == budget, f"{finished} finished trials, expected exactly {budget}: {states}\n{context}"
    if final:
        stranded = states.count(TrialState.RUNNING) + states.count(TrialState.WAITING)
        assert stranded == 0, f"trials left running or queued: {states}\n{context}"
    best_trial = study.best_trial
    best = root / name / "best"
    card = _card(best)
    assert (card["trial"], card["value"]) == (best_trial.number, best_trial.value), (
        f"best/ holds trial {card['trial']} ({card['value']}), the storage's best is trial {best_trial.number} "
        f"({best_trial.value})\n{context}"
    )
    digest = hashlib.sha256((best / "model.pt").read_bytes()).hexdigest()
    assert digest == card["weights"]["sha256"], f"best/model.pt does not match model.json's sha256\n{context}"
    assert _leftovers(root / name) == [], f"temporary files left: {_leftovers(root / name)}\n{context}"
    predictor = hpo.load_best(name, root=root)
    rows = pd.read_csv(DATASET).iloc[card["data"]["validation_rows"]]
    truth = rows[card["target"]] == card["labels"]["positive"]
    auroc = roc_auc_score(truth, predictor.predict_proba(rows))
    recorded = card["metrics"]["val/auroc"]
    assert auroc == pytest.approx(recorded, abs=1e-6), (
        f"best/ scores AUROC {auroc} on the validation rows, model.json records {recorded}\n{context}"
    )


def _describe(root: Path, name: str) -> str:
    """The study's trials and what best/ holds, for the history of a test."""
    study = _study(root, name)
    if study is None:
        return "no study yet"
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    shown = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    best = root / name / "best"
    held = _card(best)["trial"] if (best / "model.json").exists() else None
    try:
        stored: int | None = study.best_trial.number
    except ValueError:
        stored = None
    stale = " (behind the storage)" if held != stored else ""
    return f"trials: {shown or 'none'}; best/ holds trial {held}{stale}, the storage's best is {stored}"


def _context(history: list[str], run: _Run | None = None) -> str:
    lines = [f"seed {SEED} (HPO_CHAOS_SEED); runs so far:", *history]
    if run is not None:
        output = [line for line in run.output().splitlines() if not line.startswith("  ")]  # not the data's columns
        lines.append(f"output of the last run ({run.log.name}):\n" + "\n".join(output)[-3000:])
    return "\n".join(lines)


def _repair_and_check(fork_server: _ForkServer, space: Path, root: Path, history: list[str]) -> None:
    """Rerun with the budget the study has finished so far: the run trains nothing, so what it leaves shows the
    repair alone (best/ reconciled with the storage, temporary folders removed)."""
    name = space.stem
    finished = _finished(root, name)
    if finished == 0:
        return
    rerun = fork_server.start(
        ["run", str(space), "--root", str(root), "--n-trials", str(finished), "--threads", "1"], space.parent
    )
    code = rerun.wait()
    notes = [line for line in rerun.output().splitlines() if line.startswith("note: best/")]
    history.append(f"  rerun --n-trials {finished}: exit {code}{'; ' + notes[0] if notes else ''}")
    assert code == 0, _context(history, rerun)
    # A trial the kill interrupted is still marked running until its heartbeat is stale: the next run fails and
    # retries it, so it may be left here.
    _check_settled(root, name, finished, _context(history, rerun), final=False)


def test_random_kills_then_reruns_keep_best_in_step_with_the_storage(fork_server: _ForkServer, tmp_path: Path) -> None:
    n_trials = 10
    space = _write_space(tmp_path, "chaos", n_trials)
    root = tmp_path / "studies"
    rng = random.Random(SEED)
    delays = [round(rng.uniform(0.0, 1.0), 3) for _ in range(8)]
    history: list[str] = [f"kill delays (s after the run printed its data): {delays}"]
    argv = ["run", str(space), "--root", str(root), "--threads", "1"]
    kills = 0
    for delay in delays:
        run = fork_server.start(argv, tmp_path)
        run.wait_for_data()
        time.sleep(delay)
        run.kill()
        code = run.wait()
        history.append(f"run {run.log.name}: killed after {delay} s: exit {code}, {_describe(root, 'chaos')}")
        if code == 0:
            break  # it finished before the kill
        assert code == -signal.SIGKILL, _context(history, run)
        kills += 1
        _check_intact(root, "chaos", _context(history, run))
        _repair_and_check(fork_server, space, root, history)
    last = fork_server.start(argv, tmp_path)
    code = last.wait()
    history.append(f"run {last.log.name} to the end: exit {code} ({kills} kills before)")
    assert code == 0, _context(history, last)
    _check_settled(root, "chaos", n_trials, _context(history, last))


def _held(best: Path) -> int | None:
    """The trial whose model best/ holds (None: no best/ yet)."""
    return _card(best)["trial"] if (best / "model.json").exists() else None


def _repair_note(held: int | None, best: int) -> str:
    shown = "nothing" if held is None else f"trial {held}"
    return f"note: best/ held {shown}, not the storage's best trial {best}; restored trial {best} from its files"


def test_a_kill_between_tell_and_promotion_is_repaired_by_the_next_run(
    fork_server: _ForkServer, tmp_path: Path
) -> None:
    # Killed at the first promotion: the storage has a best trial, best/ has none of it. (With several trials
    # trained at once, training.population, that comes after the first population was told: still mid-study.)
    n_trials = 10
    space = _write_space(tmp_path, "window", n_trials)
    root = tmp_path / "studies"
    argv = ["run", str(space), "--root", str(root), "--threads", "1"]
    killed = fork_server.start(argv, tmp_path, kill_at="promotion")
    assert killed.wait() == -signal.SIGKILL, killed.output()
    study = _study(root, "window")
    assert study is not None
    held, best = _held(root / "window" / "best"), study.best_trial.number
    assert held != best, f"the kill should leave best/ behind the storage; output:\n{killed.output()}"
    assert _finished(root, "window") < n_trials, f"the kill should land mid-study; output:\n{killed.output()}"

    rerun = fork_server.start(argv, tmp_path)
    assert rerun.wait() == 0, rerun.output()
    assert _repair_note(held, best) in rerun.output()
    _check_settled(root, "window", n_trials, rerun.output())


def test_a_kill_after_the_last_trial_is_told_is_repaired_in_the_finished_study(
    fork_server: _ForkServer, tmp_path: Path
) -> None:
    # Trial 0 learns almost nothing, trial 1 learns: the last trial is the new best, and the kill comes right after
    # Optuna recorded it, so the study has its whole budget and best/ holds trial 0 (nothing, when both trials
    # trained at once and trial 0 was never the best).
    space = _write_space(
        tmp_path,
        "last",
        2,
        study={"metric": "val/loss", "enqueue": [{"lr": 1e-5}, {"lr": 0.05}], "pruner": {"name": "none"}},
        params={"lr": {"type": "categorical", "choices": [1e-5, 0.05]}, "optimizer": "adam", "momentum": 0.0},
    )
    root = tmp_path / "studies"
    argv = ["run", str(space), "--root", str(root), "--threads", "1"]
    killed = fork_server.start(argv, tmp_path, kill_at="promotion", kill_trial=1)
    assert killed.wait() == -signal.SIGKILL, killed.output()
    held = _held(root / "last" / "best")
    assert _finished(root, "last") == 2 and held in (0, None), killed.output()

    # A plain `hpo run` in a fresh Python, as a user would type it.
    rerun = run_hpo(argv, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert _repair_note(held, 1) in rerun.stderr
    assert "2/2 trials finished (0 in this run)" in rerun.stdout
    _check_settled(root, "last", 2, rerun.stdout + rerun.stderr)


def test_a_kill_between_asking_a_trial_and_its_first_heartbeat_does_not_strand_the_budget(
    fork_server: _ForkServer, tmp_path: Path
) -> None:
    # Optuna creates the trial (running) before its heartbeat starts: killed in between, the trial has no heartbeat
    # for Optuna's stale-trial check to go by, and would hold one trial of the budget for ever.
    space = _write_space(tmp_path, "asked", 2)
    root = tmp_path / "studies"
    argv = ["run", str(space), "--root", str(root), "--threads", "1"]
    killed = fork_server.start(argv, tmp_path, kill_at="ask")
    assert killed.wait() == -signal.SIGKILL, killed.output()
    study = _study(root, "asked")
    assert study is not None and [t.state for t in study.trials] == [TrialState.RUNNING], killed.output()

    rerun = fork_server.start(argv, tmp_path)
    assert rerun.wait() == 0, rerun.output()
    _check_settled(root, "asked", 2, rerun.output())
    study = _study(root, "asked")
    assert study is not None and study.trials[0].state == TrialState.FAIL


def test_workers_killed_together_then_a_rerun_finishes_exactly_the_budget(
    fork_server: _ForkServer, tmp_path: Path
) -> None:
    n_trials = 8
    space = _write_space(tmp_path, "group", n_trials)
    root = tmp_path / "studies"
    argv = ["run", str(space), "--root", str(root), "--threads", "1"]
    delay = round(random.Random(SEED + 1).uniform(0.0, 0.6), 3)
    history = [f"--workers 2: SIGKILL to every process group {delay} s after the first finished trial"]
    run = fork_server.start([*argv, "--workers", "2"], tmp_path)
    _wait_for(lambda: _finished(root, "group") >= 1 or not _alive(run.pid), timeout=180)
    workers = _children(run.pid)
    time.sleep(delay)
    run.kill(workers)
    code = run.wait()
    history.append(f"killed run: exit {code}, workers {workers}, {_describe(root, 'group')}")
    assert code == -signal.SIGKILL and len(workers) == 2, _context(history, run)
    _check_intact(root, "group", _context(history, run))

    # One process finishes what the killed workers left (resuming with workers is tested in test_workers.py).
    last = fork_server.start(argv, tmp_path)
    code = last.wait()
    history.append(f"rerun: exit {code}")
    assert code == 0, _context(history, last)
    _check_settled(root, "group", n_trials, _context(history, last))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
