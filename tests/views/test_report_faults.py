"""``hpo report`` into a place it cannot write, and over a ``best/`` whose files are damaged or hostile."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpo.cli import main


@pytest.fixture
def root(tiny_study: Path, tmp_path: Path) -> Path:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    return root


def _report(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["report", "--study", "tiny", "--root", str(root), *args])
    return result.exit_code, result.output


def test_report_into_an_unwritable_place_exits_2_with_the_reason(root: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    cases = {
        "/proc/hpo-report": "No such file or directory",  # cannot be made
        "/proc": "",  # exists, but nothing can be written into it
        str(tmp_path / "a-file" / "report"): "Not a directory",
    }
    for out, reason in cases.items():
        code, output = _report(root, "--out", out)
        assert code == 2, output
        assert output.startswith(f"error: {out}: cannot write the report there ({reason}"), output
        assert "pass --out with a folder you can write" in output and "Traceback" not in output
    assert not (root / "tiny" / "report").exists()


def test_a_damaged_or_hostile_best_folder_does_not_stop_the_report(root: Path, tmp_path: Path) -> None:
    best = root / "tiny" / "best"
    (best / "model.json").write_text("{ this is not json", encoding="utf-8")
    (best / "reliability.png").unlink(missing_ok=True)
    (best / "reliability.png").symlink_to("/dev/zero")
    out = tmp_path / "report"
    code, output = _report(root, "--out", str(out))
    assert code == 0, output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "model.json: cannot be read as JSON" in page
    assert "reliability.png: is a device, not the regular file" in page
    assert "No reliability diagram: best/reliability.png cannot be read" in output
    assert "Not read: " in output and "model.json: cannot be read as JSON" in output
    listed = CliRunner().invoke(main, ["report", "--study", "tiny", "--root", str(root), "--out", str(out), "--json"])
    unreadable = json.loads(listed.stdout)["unreadable"]
    assert sorted(unreadable) == ["model.json", "reliability.png"] and "is a device" in unreadable["reliability.png"]

    (best / "model.json").unlink()
    os.mkfifo(best / "model.json")  # would block a reader forever
    code, output = _report(root, "--out", str(out))
    assert code == 0, output
    assert "model.json: is a named pipe (FIFO)" in (out / "index.html").read_text(encoding="utf-8")
