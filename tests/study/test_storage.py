from __future__ import annotations

import multiprocessing
from pathlib import Path

from hpo.study.storage import open_storage

PROCESSES = 6


def _open(url: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait()  # all at once, like workers (or a dashboard) opening a database that does not exist yet
    try:
        open_storage(url, create=True)
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_the_same_new_sqlite_database_at_once_all_open_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for round_ in range(4):
        url = f"sqlite:///{tmp_path / f'race{round_}' / 'study.db'}"
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        processes = [context.Process(target=_open, args=(url, barrier, results)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    assert outcomes == ["ok"] * (4 * PROCESSES), [o for o in outcomes if o != "ok"][:3]
