"""Local parallel workers: N copies of ``hpo run`` on one study and one storage, CPU threads split between them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

__all__ = [
    "WORKER_INDEX_ENV",
    "WorkerPool",
    "available_cores",
    "describe_exit",
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
