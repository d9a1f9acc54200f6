"""A study remembers the experiment that created it: any change that alters what its trials mean is refused on
resume, naming each changed key; settings of the run alone (n_trials, timeout) may change."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.errors import StudyError
from hpo.study.fingerprint import FINGERPRINT_ATTR, check_fingerprint
from tests.conftest import tiny_space

ROWS = "".join(f"{i},{(i * 7) % 11},{'abc'[i % 3]},{i % 2}\n" for i in range(60))


def _files(tmp_path: Path) -> tuple[Path, dict]:
    (tmp_path / "data.csv").write_text("a,b,c,y\n" + ROWS, encoding="utf-8")
    doc = tiny_space(data={"path": "data.csv", "target": "y"})
    doc["data"].pop("source")
    return tmp_path / "data.csv", doc


def _experiment(tmp_path: Path, doc: dict, name: str = "space.yaml", overrides: tuple[str, ...] = ()):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_experiment(path, overrides)


def _change(doc: dict, section: str, key: str, value: object) -> dict:
    changed = json.loads(json.dumps(doc))
    if value is None:
        changed[section].pop(key)
    else:
        changed[section][key] = value
    return changed


LR_WIDER = {"type": "float", "low": 1e-3, "high": 0.3, "log": True}
CHANGES = [
    ("param range", lambda d: _change(d, "params", "lr", LR_WIDER), "params.lr.high"),
    (
        "new param",
        lambda d: _change(d, "params", "dropout", {"type": "float", "low": 0, "high": 0.5}),
        "params.dropout",
    ),
    ("removed param", lambda d: _change(d, "params", "momentum", None), "params.momentum"),
    ("target", lambda d: _change(d, "data", "target", "a"), "data.target"),
    ("split seed", lambda d: _change(d, "data", "split_seed", 7), "data.split_seed"),
    ("validation fraction", lambda d: _change(d, "data", "validation_fraction", 0.3), "data.validation_fraction"),
    ("epochs", lambda d: _change(d, "training", "max_epochs", 9), "training.max_epochs"),
    ("preprocessing", lambda d: _change(d, "params", "preprocessing.numeric", "robust"), "preprocessing.numeric"),
    ("column types", lambda d: _change(d, "data", "categorical", ["b"]), "data.categorical"),
]


@pytest.mark.parametrize(("name", "change", "key"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_kind_of_change_is_refused_naming_the_key(tmp_path: Path, name: str, change, key: str) -> None:
    _, doc = _files(tmp_path)
    study = optuna.create_study(study_name="tiny", direction="maximize")
    check_fingerprint(study, _experiment(tmp_path, doc), "sqlite:///x.db")
    assert FINGERPRINT_ATTR in study.user_attrs
    with pytest.raises(StudyError) as caught:
        check_fingerprint(study, _experiment(tmp_path, change(doc), "changed.yaml"), "sqlite:///x.db")
    message = str(caught.value)
    assert f"{key}" in message and "->" in message
    assert "--study NEW" in message and "--from tiny" in message


def test_data_content_is_part_of_the_experiment_and_run_settings_are_not(tmp_path: Path) -> None:
    csv, doc = _files(tmp_path)
    study = optuna.create_study(study_name="tiny", direction="maximize")
    check_fingerprint(study, _experiment(tmp_path, doc), "sqlite:///x.db")
    # n_trials and timeout, and the same settings given as overrides, are free.
    again = _experiment(tmp_path, doc, overrides=("study.n_trials=50", "study.timeout=30"))
    check_fingerprint(study, again, "sqlite:///x.db")
    csv.write_text("a,b,c,y\n" + ROWS.replace("0,0,a,0", "0,5,a,0"), encoding="utf-8")
    with pytest.raises(StudyError, match=r"data\.sha256"):
        check_fingerprint(study, _experiment(tmp_path, doc), "sqlite:///x.db")


@pytest.mark.slow
def test_the_cli_refuses_a_changed_resume_with_exit_2_and_resumes_an_unchanged_one(tmp_path: Path) -> None:
    _, doc = _files(tmp_path)
    doc["study"]["n_trials"] = 1
    doc["training"]["max_epochs"] = 1
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    root = ["--root", str(tmp_path / "studies")]
    first = CliRunner().invoke(main, ["run", str(tmp_path / "space.yaml"), *root])
    assert first.exit_code == 0, first.output
    changed = CliRunner().invoke(main, ["run", str(tmp_path / "space.yaml"), "training.max_epochs=2", *root])
    assert changed.exit_code == 2 and "training.max_epochs: 1 -> 2" in changed.stderr
    more = CliRunner().invoke(main, ["run", str(tmp_path / "space.yaml"), "--n-trials", "2", *root, "--json"])
    assert more.exit_code == 0 and json.loads(more.stdout)["finished"] == 2
