"""Storage URLs that are malformed, in memory, unwritable or hold credentials: exit 2, the reason, no password."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner, Result

from hpo.cli import main
from hpo.errors import StudyError
from hpo.study.access import load_study
from hpo.study.storage import check_storage_url, open_storage, redact_url
from tests.conftest import run_hpo, tiny_space

SECRET = "Hunter2-s3cret"

#: A URL with a credential -> what it must look like in every message.
REDACTED = {
    f"postgresql+psycopg://bob:{SECRET}@db.example/hpo": "postgresql+psycopg://bob:***@db.example/hpo",
    f"postgresql+psycopg://bob@db.example/hpo?password={SECRET}": "postgresql+psycopg://bob@db.example/hpo?password=***",
    f"postgresql+psycopg://bob:{SECRET}@db/hpo?sslmode=require&password={SECRET}x": (
        "postgresql+psycopg://bob:***@db/hpo?sslmode=require&password=***"
    ),
    f"postgresql+psycopg://bob@db/hpo?sslpassword={SECRET}&passfile=/home/bob/.pgpass": (
        "postgresql+psycopg://bob@db/hpo?sslpassword=***&passfile=***"
    ),
    f"mysql+pymysql://bob@db/hpo?passwd={SECRET}&charset=utf8mb4": "mysql+pymysql://bob@db/hpo?passwd=***&charset=utf8mb4",
    f"mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BUID%3Dbob%3BPWD%3D{SECRET}": "mssql+pyodbc:///?odbc_connect=***",
    f"postgresql+psycopg://bob@db/hpo?options=-c%20password%3D{SECRET}": "postgresql+psycopg://bob@db/hpo?options=***",
    f"sqlite:///studies/x/study.db?password={SECRET}": "sqlite:///studies/x/study.db?password=***",
    # a password with an unescaped @ (SQLAlchemy then reads part of it as the host) or : (as the port)
    f"postgresql+psycopg://bob:p@ss{SECRET}@db/hpo": "postgresql+psycopg://bob:***@db/hpo",
    f"postgresql+psycopg://bob:p@ss:{SECRET}@db:5432/hpo": "postgresql+psycopg://bob:***@db:5432/hpo",
    # unparseable: masked as text
    f"postgresql://bob:{SECRET}@[::1/hpo": "postgresql://bob:***@[::1/hpo",
    f"bob:{SECRET}@db/hpo": "bob:***@db/hpo",
}


@pytest.mark.parametrize("url", list(REDACTED))
def test_redact_url_masks_every_credential_form(url: str) -> None:
    assert redact_url(url) == REDACTED[url]
    assert "Hunter2" not in redact_url(url)


def test_redact_url_keeps_what_is_not_a_credential() -> None:
    for url in (
        "sqlite:///studies/default/study.db",
        "sqlite:///:memory:",
        "postgresql+psycopg://bob@db.example:5432/hpo?sslmode=require&application_name=hpo",
        "sqlite:////data/a:b@c/study.db",  # no user part: ':' and '@' in a path are not a password
    ):
        assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://:notaport/x", "is not a valid SQLAlchemy URL: its port is not a number"),
        ("postgresql://[::1/x", "its port is not a number (an IPv6 address goes in brackets"),
        ("not a url", "is not a SQLAlchemy URL"),
        ("nosuchdb://host/x", "names an unknown kind of database 'nosuchdb'"),
        ("sqlite:///:memory:", "is an in-memory SQLite database: the study (every trial, the best one) would vanish"),
        ("sqlite://", "is an in-memory SQLite database"),
        ("sqlite:///file::memory:?uri=true", "is an in-memory SQLite database"),
        ("sqlite:///file:hpo?mode=memory&cache=shared&uri=true", "is an in-memory SQLite database"),
    ],
)
def test_urls_that_cannot_hold_a_study_are_refused(url: str, reason: str) -> None:
    with pytest.raises(StudyError, match=re.escape(f"--storage: {redact_url(url)!r} ")) as info:
        check_storage_url(url)
    assert reason in str(info.value)
    with pytest.raises(StudyError):
        open_storage(url, create=True)


def test_a_database_that_cannot_be_created_or_is_not_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)  # SQLite would block reading it
    cases = {
        "sqlite:////proc/hpo-no-such-folder/study.db": (
            "cannot create the folder /proc/hpo-no-such-folder for the database (No such file or directory)"
        ),
        f"sqlite:///{tmp_path}/a-file/study.db": "cannot use",
        f"sqlite:///{fifo}": "is not a regular file",
        "sqlite:////dev/zero": "/dev/zero is not a regular file",
        f"sqlite:///{tmp_path}": "is a folder",
    }
    for url, reason in cases.items():
        for create in (True, False):
            with pytest.raises(StudyError) as info:
                open_storage(url, create=create)
            if create or "cannot create" not in reason:
                assert reason in str(info.value), str(info.value)
            else:
                assert "no such database file" in str(info.value)


def test_a_damaged_database_or_one_of_another_optuna_version_is_refused_by_load_study(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/good.db")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    (tmp_path / "garbage.db").write_bytes(b"not a database " * 1000)
    shutil.copy(tmp_path / "good.db", tmp_path / "other-version.db")
    with sqlite3.connect(tmp_path / "other-version.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")
    for name, reason in (("garbage", "file is not a database"), ("other-version", "no longer compatible")):
        expected = f"{re.escape(f'sqlite:///{tmp_path}/{name}.db')}: cannot open the study storage .*{reason}"
        with pytest.raises(StudyError, match=expected):
            load_study("s", tmp_path, f"sqlite:///{tmp_path}/{name}.db")


def _cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env)


BAD_URLS = {
    "postgresql://:notaport/x": "its port is not a number",
    "postgresql://bob:Hunter2@[::1/x": "its port is not a number",
    "nosuchdb://host/x": "unknown kind of database",
    "sqlite:///:memory:": "in-memory SQLite database",
    "sqlite://": "in-memory SQLite database",
    "sqlite:////proc/hpo-nowhere/study.db": "no such database file",
    "sqlite:////dev/zero": "is not a regular file",
    f"postgresql+psycopg://bob@127.0.0.1:1/hpo?password={SECRET}": "cannot open the study storage",
}


@pytest.mark.parametrize("command", [["studies"], ["best", "--study", "x"], ["report", "--study", "x"]])
def test_light_commands_give_exit_2_and_the_masked_url_for_every_bad_url(command: list[str], tmp_path: Path) -> None:
    for url, reason in BAD_URLS.items():
        for args, env in (([*command, "--storage", url], None), (command, {"HPO_STORAGE": url})):
            result = _cli([*args, "--root", str(tmp_path)], env)
            assert result.exit_code == 2, (url, result.output, result.exception)
            assert reason in result.output and redact_url(url) in result.output, result.output
            assert "Hunter2" not in result.output and "Traceback" not in result.output


def _space(tmp_path: Path, name: str) -> Path:
    doc = tiny_space(study={"name": name, "n_trials": 1}, training={"max_epochs": 1})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.slow
def test_hpo_run_refuses_bad_storage_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    space = _space(tmp_path, "tiny")
    cases = [
        (["--storage", "sqlite:///:memory:"], "is an in-memory SQLite database"),
        (["--storage", "sqlite://"], "is an in-memory SQLite database"),
        (["--storage", f"postgresql://bob:{SECRET}@db:notaport/x"], "its port is not a number"),
        (["--storage", "nosuchdb://host/x"], "unknown kind of database"),
        (["--root", "/proc"], "cannot create the folder /proc/tiny for the database"),
        (["--storage", "sqlite:////proc/hpo-nowhere/study.db"], "cannot create the folder /proc/hpo-nowhere"),
    ]
    for args, reason in cases:
        result = run_hpo(["run", str(space), *args], cwd=tmp_path, timeout=120)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert reason in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert SECRET not in result.stdout + result.stderr
        assert "Data " not in result.stdout  # refused before the data is read (and torch imported)
    assert not (tmp_path / "studies").exists()
    assert not list(tmp_path.glob(".hpo-probe-*"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Query string argument:sqlalchemy.exc.SAWarning")
def test_a_query_password_never_appears_in_run_best_studies_or_report(tmp_path: Path) -> None:
    """SQLite ignores query parameters it does not know (SQLAlchemy warns, naming the key only), so a
    ``?password=`` reaches every output that shows the storage."""
    url = f"sqlite:///{tmp_path}/shared.db?password={SECRET}"
    space = _space(tmp_path, "leak")
    outputs = []
    for args, env in (
        (["run", str(space), "--storage", url], None),
        (["run", str(space), "--json", "--study", "leak2"], {"HPO_STORAGE": url}),
        (["best", "--study", "leak", "--storage", url], None),
        (["best", "--study", "leak", "--json"], {"HPO_STORAGE": url}),
        (["studies", "--storage", url, "--json"], None),
        (["studies"], {"HPO_STORAGE": url}),
        (["report", "--study", "leak", "--storage", url, "--json"], None),
    ):
        result = run_hpo(args, cwd=tmp_path, timeout=300, env=env)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        outputs.append(result.stdout + result.stderr)
        if args[0] == "run" and "--json" in args:
            assert json.loads(result.stdout)["storage"] == f"sqlite:///{tmp_path}/shared.db?password=***"
    text = "\n".join(outputs)
    assert f"optuna-dashboard sqlite:///{tmp_path}/shared.db?password=***" in outputs[0]  # the See: line
    assert f"Storage: sqlite:///{tmp_path}/shared.db?password=***" in outputs[2]
    assert SECRET not in text
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []  # index.html, model.json, TensorBoard events, the database itself

    empty = f"sqlite:///{tmp_path}/empty.db?password={SECRET}"
    optuna.create_study(study_name="gone", storage=f"sqlite:///{tmp_path}/empty.db")
    optuna.delete_study(study_name="gone", storage=f"sqlite:///{tmp_path}/empty.db")
    result = _cli(["studies", "--storage", empty])
    assert result.exit_code == 0 and "No studies in" in result.output and SECRET not in result.output
