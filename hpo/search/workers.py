"""Local parallel workers: N copies of ``hpo run`` on one study and one storage, CPU threads split between them."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData, load_data
from hpo.search.run import (
    RunResult,
    finalize_finished_study,
    finished_study_result,
    start_warm,
    study_ended,
    study_result,
)
from hpo.search.warm_start import WarmStart
from hpo.study.access import count_finished, create_or_resume_study
from hpo.study.fingerprint import check_fingerprint
from hpo.study.storage import STORAGE_ENV

__all__ = [
    "WORKER_INDEX_ENV",
    "WorkerPool",
    "WorkersOutcome",
    "available_cores",
    "describe_exit",
    "run_workers",
    "threads_per_worker",
    "worker_command",
]

#: Set in each worker's environment: its number, 0..N-1 (it offsets the sampler's seed).
WORKER_INDEX_ENV = "HPO_WORKER_INDEX"


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes sharing ``cores``: ``max(1, cores // workers)``."""
    return max(1, (cores or available_cores()) // workers)


class WorkerPool:
    """Start ``n`` worker processes running ``args`` and relay their output lines.

    Workers run in their own process group, so a Ctrl-C in the terminal reaches them only through
    :meth:`send_signal` (once), and the parent decides what to forward.

    Args:
        args: the command of one worker (``[python, -m, hpo.cli, run, ...]``).
        n: number of workers.
        env: environment of every worker (``HPO_WORKER_INDEX`` is added per worker).
        on_line: called with (worker index, line) for every line a worker prints, from reader threads.
    """

    def __init__(self, args: Sequence[str], n: int, env: dict[str, str], on_line: Callable[[int, str], None]) -> None:
        self._lock = threading.Lock()
        self.processes: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        for index in range(n):
            proc = subprocess.Popen(
                list(args),
                env={**env, WORKER_INDEX_ENV: str(index)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.processes.append(proc)
            reader = threading.Thread(target=self._relay, args=(index, proc, on_line), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _relay(self, index: int, proc: subprocess.Popen[str], on_line: Callable[[int, str], None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                on_line(index, line.rstrip("\n"))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to every worker still running."""
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    proc.send_signal(signum)

    def wait(self) -> list[int]:
        """Wait for every worker; their exit codes (negative: killed by that signal)."""
        codes = [proc.wait() for proc in self.processes]
        for reader in self._readers:
            reader.join(timeout=5)
        return codes


def _die_with_parent() -> None:
    """In a worker, before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux), so that no worker is
    left running as an orphan (a SIGTERM finishes its trial's bookkeeping the usual way)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: workers outlive a killed parent, as before


_PR_SET_PDEATHSIG = 1


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of one worker: this Python running the ``hpo`` CLI with ``argv``."""
    return [sys.executable, "-m", "hpo.cli", *argv]


def describe_exit(code: int) -> str:
    """'exit code 2' or 'killed by SIGKILL'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(frozen=True)
class WorkersOutcome:
    """How a run with parallel workers ended: the study's result, the exit code, and the workers that failed."""

    result: RunResult
    exit_code: int
    failed_workers: tuple[tuple[int, str], ...]  # (worker index, "exit code 1" or "killed by SIGKILL")


def run_workers(
    experiment: Experiment,
    worker_argv: Sequence[str],
    *,
    workers: int,
    root: Path = Path("studies"),
    storage: str | None = None,
    threads: int | None = None,
    on_line: Callable[[int, str], None],
    on_start: Callable[[WorkerPool, int], None] | None = None,
    interrupted: Callable[[], bool] = lambda: False,
    on_data: Callable[[PreparedData], None] | None = None,
    warm_start: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
    on_queued: Callable[[WarmStart | None], None] | None = None,
) -> WorkersOutcome:
    """Run the study of ``experiment`` with ``workers`` local processes (each an ``hpo run`` with ``worker_argv``).

    The data is checked and the study created once, here, before the workers race; then each worker runs trials
    until the budget is finished. A worker that dies is reported; its trial is retried by the others, and the exit
    code is 0 when they finished the budget anyway.

    Args:
        experiment: the validated search-space file.
        worker_argv: the ``hpo`` arguments of one worker (``--threads`` is added).
        workers: how many processes.
        root: the folder holding one folder per study.
        storage: a SQLAlchemy URL; it reaches the workers through ``$HPO_STORAGE`` (a password stays out of ``ps``).
        threads: torch threads per worker (default: the cores split between the workers).
        on_line: called with (worker index, line) for every line a worker prints.
        on_start: called with the pool and the threads per worker once the workers run (to forward signals).
        interrupted: True when the user asked to stop (a worker's exit is then not a failure).
        on_data: called once with the checked data (its columns, rows left out), before the study is opened.
        warm_start: (where from, configurations) to queue first in a new study (see :func:`~hpo.search.run.run_study`).
        on_queued: called once, before the workers start, with what the warm start queued (None: nothing).

    Raises:
        DataError, StudyError: bad data, or a storage or study that cannot be used.
    """
    data = load_data(experiment.data)  # bad data: one error here rather than one per worker
    if on_data is not None:
        on_data(data)
    finished = finished_study_result(experiment, root=root, storage=storage)
    if finished is not None:
        return WorkersOutcome(finished, 0, ())
    study, paths, url = create_or_resume_study(experiment, root=root, storage=storage)
    check_fingerprint(study, experiment, url)
    warm = start_warm(study, experiment, warm_start, on_queued)
    finished_before = count_finished(study)
    per_worker = threads or threads_per_worker(workers)
    env = {**os.environ, "NO_COLOR": "1"}
    if storage:
        env[STORAGE_ENV] = storage
    pool = WorkerPool(worker_command([*worker_argv, "--threads", str(per_worker)]), workers, env, on_line)
    if on_start is not None:
        on_start(pool, per_worker)
    codes = pool.wait()
    result = study_result(
        study, paths, url, experiment.study.n_trials, count_finished(study) - finished_before, interrupted()
    )
    result = replace(result, warm_start=warm)
    # Workers that all exited cleanly before the budget was finished ran until the timeout.
    timed_out = experiment.study.timeout is not None and all(c == 0 for c in codes)
    if study_ended(study, result, timed_out):
        result = replace(result, finalization=finalize_finished_study(experiment, data, root=root, storage=storage))
    failed = tuple((i, describe_exit(c)) for i, c in enumerate(codes) if c != 0 and not interrupted())
    code = max((2 if codes[i] == 2 else 1 for i, _ in failed), default=0)
    if code == 1 and result.budget is not None and result.finished >= result.budget:
        code = 0  # a worker died, but the others finished its share: the study is complete
    return WorkersOutcome(result, code, failed)
