"""Broken data files through the real CLI (in-process): exit code 2, a message naming the place, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hpo.cli import main
from tests.conftest import tiny_space

ROWS = "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(20))
WIDE = 10_001

CASES: list[tuple[str, bytes | str, str | tuple[str, ...]]] = [
    ("empty", "", "is empty"),
    ("header only", "a,b,y\n", "has a header but no data rows"),
    ("not utf-8", b"a,b,y\n1,\xe9t\xe9,0\n", "is not UTF-8"),
    ("ragged rows", "a,b,y\n" + ROWS + "1,2,3,4,5\n", "rows do not match the header"),
    ("all-blank feature", "a,b,y\n" + "".join(f"{i}, ,{i % 2}\n" for i in range(20)), "column 'b' is blank in all"),
    ("inf", "a,b,y\n" + ROWS + "inf,2,1\n", "column 'a' has infinite values at line 22"),
    ("constant target", "a,b,y\n" + "".join(f"{i},{i},1\n" for i in range(20)), "exactly two classes"),
    (
        "class too small for both splits",
        "a,b,y\n" + "".join(f"{i},{i},{int(i == 3)}\n" for i in range(20)),
        "class 1 of column 'y' has fewer than 2 rows",
    ),
    (
        "thousands of columns",
        ",".join(f"c{i}" for i in range(WIDE))
        + ",y\n"
        + "".join(",".join(["1"] * WIDE) + f",{i % 2}\n" for i in range(4)),
        f"{WIDE} feature columns",
    ),
    (
        "three problems at once",
        "a,b,c,y\n" + "".join(f"{'inf' if i == 4 else i},,{i},{i % 3}\n" for i in range(20)),
        ("exactly two classes", "column 'a' has infinite values at line 6", "column 'b' is blank in all 20 rows"),
    ),
    ("three classes", "a,b,y\n" + "".join(f"{i},{i},{i % 3}\n" for i in range(20)), "found 3"),
    ("duplicate columns", "a,a,y\n" + ROWS, "column 'a' appears more than once"),
    ("missing target", "a,b,label\n" + ROWS, "target column ['y'] not in the file"),
]


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes | str, expected: str | tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data.csv"
    if isinstance(content, bytes):
        data.write_bytes(content)
    else:
        data.write_text(content)
    doc = tiny_space(data={"path": "data.csv", "target": "y"})
    doc["data"].pop("source")
    doc["data"].pop("split_seed")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["run", "space.yaml"])
    assert result.exit_code == 2, result.output
    assert "error: data.csv: " in result.output
    for part in (expected,) if isinstance(expected, str) else expected:
        assert part in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "studies").exists()
