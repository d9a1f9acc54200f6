"""Hostile files in ``best/``: a model.json or front.json that is a named pipe, a device, or huge, is refused
without being read whole (or at all)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpo.best.folder import CARD_FILE, DEFAULT_MAX_FILE_BYTES, FORMAT, FRONT_FILE, read_card, read_front
from hpo.errors import WeightsError
from tests.conftest import HPO, REPO


@contextmanager
def _at_most(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a read that blocks (a pipe nobody writes to) is interrupted by SIGALRM."""

    def interrupt(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _card_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "best"
    folder.mkdir()
    (folder / CARD_FILE).write_text(json.dumps({"format": FORMAT, "trial": 3}), encoding="utf-8")
    return folder


def test_a_card_that_is_a_pipe_or_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    folder = _card_folder(tmp_path)
    card = folder / CARD_FILE
    card.unlink()
    os.mkfifo(card)  # nobody writes to it: opening it for reading would block forever
    with _at_most(10), pytest.raises(WeightsError, match=r"model.json: is a named pipe \(FIFO\), not the regular file"):
        read_card(folder)
    card.unlink()
    card.symlink_to("/dev/zero")  # endless zeros
    with _at_most(10), pytest.raises(WeightsError, match=r"model.json: is a device, not the regular file"):
        read_card(folder)


def test_a_huge_card_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _card_folder(tmp_path)
    assert read_card(folder)["trial"] == 3
    size = (folder / CARD_FILE).stat().st_size
    monkeypatch.setenv("HPO_MAX_FILE_BYTES", str(size - 1))
    with pytest.raises(WeightsError, match=rf"is {size} bytes, more than the {size - 1} bytes .*HPO_MAX_FILE_BYTES"):
        read_card(folder)
    monkeypatch.setenv("HPO_MAX_FILE_BYTES", "lots")
    with pytest.raises(WeightsError, match=r"\$HPO_MAX_FILE_BYTES: must be a whole number of bytes"):
        read_card(folder)
    monkeypatch.delenv("HPO_MAX_FILE_BYTES")
    with open(folder / CARD_FILE, "r+b") as handle:  # sparse: 64 MiB + 1 byte that take no disk space
        handle.truncate(DEFAULT_MAX_FILE_BYTES + 1)
    with pytest.raises(WeightsError, match=rf"is {DEFAULT_MAX_FILE_BYTES + 1} bytes, more than the 67108864 bytes"):
        read_card(folder)


def test_a_front_list_that_is_a_pipe_is_refused_not_taken_for_a_single_model(tmp_path: Path) -> None:
    best = tmp_path / "best"
    best.mkdir()
    assert read_front(best) is None  # no front.json: a single-objective best/
    os.mkfifo(best / FRONT_FILE)
    with _at_most(10), pytest.raises(WeightsError, match=r"front.json: is a named pipe \(FIFO\)"):
        read_front(best)
    (best / FRONT_FILE).unlink()
    (best / FRONT_FILE).write_text('{"trials": [{"trial": 1, "values": {"a": 1.0}, "folder": null}]}')
    assert [e.trial for e in read_front(best) or []] == [1]
    (best / FRONT_FILE).write_text("[" * 100_000)  # nested too deeply for json
    with pytest.raises(WeightsError, match="cannot be read"):
        read_front(best)


def test_hpo_best_refuses_a_hostile_card_with_exit_2(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    card = root / "tiny" / "best" / CARD_FILE

    def best() -> subprocess.CompletedProcess[str]:
        def limit_memory() -> None:  # a runaway read fails the command, not the machine
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
        return subprocess.run(
            [*HPO, "best", "--study", "tiny"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=limit_memory,
        )

    card.unlink()
    os.mkfifo(card)
    result = best()
    assert result.returncode == 2 and "is a named pipe (FIFO)" in result.stderr, result.stderr
    card.unlink()
    card.symlink_to("/dev/zero")
    result = best()
    assert result.returncode == 2 and "is a device" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
