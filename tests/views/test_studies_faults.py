"""Damaged databases: ``hpo studies`` still lists the others; ``hpo best`` and ``hpo report`` say why (exit 2)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import optuna
from click.testing import CliRunner

from hpo.cli import main
from hpo.views.studies_list import list_studies

#: Folder -> the reason its row must give.
DAMAGED = {
    "garbage": "file is not a database",
    "halved": "database disk image is malformed",
    "newer": "no longer compatible with the table schema",
}


def _root_with_damaged_databases(tmp_path: Path) -> Path:
    """Two good studies, one file that is not SQLite, one cut in half, one from another Optuna schema version."""
    root = tmp_path / "studies"
    for name in ("alpha", "zulu", "halved", "newer", "garbage"):
        (root / name).mkdir(parents=True)
    for name, n_trials in (("alpha", 40), ("zulu", 3)):
        study = optuna.create_study(study_name=name, storage=f"sqlite:///{root}/{name}/study.db")
        for x in range(n_trials):
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=float(x)))
    shutil.copy(root / "alpha" / "study.db", root / "halved" / "study.db")
    shutil.copy(root / "alpha" / "study.db", root / "newer" / "study.db")
    (root / "garbage" / "study.db").write_bytes(b"this is not a database\n" * 500)
    halved = root / "halved" / "study.db"
    halved.write_bytes(halved.read_bytes()[: halved.stat().st_size // 2])
    with sqlite3.connect(root / "newer" / "study.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")
    return root


def test_damaged_databases_are_listed_as_unreadable_next_to_the_good_ones(tmp_path: Path) -> None:
    root = _root_with_damaged_databases(tmp_path)
    found = {s.name: s for s in list_studies(root=root)}
    assert sorted(found) == ["alpha", "garbage", "halved", "newer", "zulu"]
    assert found["alpha"].error is None and sum(found["alpha"].trials.values()) == 40
    for name, reason in DAMAGED.items():
        error = found[name].error
        assert error is not None and reason in error and f"sqlite:///{root}/{name}/study.db" in error, error
        assert found[name].trials == {} and found[name].best_value is None

    table = CliRunner().invoke(main, ["studies", "--root", str(root)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert any(line.startswith("alpha ") and "40 complete" in line for line in lines)
    for name, reason in DAMAGED.items():
        assert any(line.startswith(f"{name} ") and "cannot be read" in line for line in lines), table.output
        assert any(line.startswith(f"error: {name}: ") and reason in line for line in lines), table.output

    listed = CliRunner().invoke(main, ["studies", "--root", str(root), "--json"])
    assert listed.exit_code == 0
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["zulu"]["error"] is None and rows["zulu"]["trials"] == 3
    assert all(reason in rows[name]["error"] for name, reason in DAMAGED.items())
    assert rows["garbage"]["trials"] == 0 and rows["garbage"]["direction"] is None


def test_exit_2_when_no_database_under_the_root_can_be_read(tmp_path: Path) -> None:
    root = _root_with_damaged_databases(tmp_path)
    for good in ("alpha", "zulu"):
        shutil.rmtree(root / good)
    for args in (["studies", "--root", str(root)], ["studies", "--root", str(root), "--json"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "file is not a database" in result.output and "Traceback" not in result.output
    damaged = CliRunner().invoke(main, ["studies", "--storage", f"sqlite:///{root}/halved/study.db"])
    assert damaged.exit_code == 2 and "database disk image is malformed" in damaged.output


def test_best_and_report_on_a_damaged_database_exit_2_with_the_reason(tmp_path: Path) -> None:
    root = _root_with_damaged_databases(tmp_path)
    for name, reason in DAMAGED.items():
        for command in ("best", "report"):
            result = CliRunner().invoke(main, [command, "--study", name, "--root", str(root)])
            assert result.exit_code == 2, (command, name, result.output, result.exception)
            assert f"sqlite:///{root}/{name}/study.db: cannot open the study storage" in result.output
            assert reason in result.output and "Traceback" not in result.output
