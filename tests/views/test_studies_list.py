"""hpo.views.studies_list and ``hpo studies``: every study with its trials counted by state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from hpo.cli import main
from hpo.errors import StudyError
from hpo.views.studies_list import list_studies
from tests.conftest import run_hpo


def _second_study(root: Path) -> None:
    """A study made by Optuna itself: 1 complete, 1 failed, 1 running trial, minimising."""
    (root / "other").mkdir(parents=True)
    study = optuna.create_study(study_name="other", storage=f"sqlite:///{root}/other/study.db", direction="minimize")
    study.set_user_attr("metric", "val/loss")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.25))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.ask()


def _states(study: optuna.Study) -> dict[str, int]:
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    return states


def test_list_studies_counts_trials_by_state(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    _second_study(root)
    (root / "no-database").mkdir()  # a study run against another storage leaves no study.db here

    found = {s.name: s for s in list_studies(root=root)}
    assert sorted(found) == ["other", "tiny"]
    tiny = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    assert found["tiny"].trials == _states(tiny) and sum(found["tiny"].trials.values()) == 6
    assert found["tiny"].best_trial == tiny.best_trial.number and found["tiny"].best_value == tiny.best_value
    assert found["tiny"].direction == "maximize" and found["tiny"].metric == "val/auroc"
    assert found["tiny"].last_update == max(t.datetime_complete for t in tiny.trials if t.datetime_complete)
    assert found["other"].trials == {"complete": 1, "fail": 1, "running": 1}
    assert found["other"].best_value == 0.25 and found["other"].direction == "minimize"

    by_url = list_studies(storage=f"sqlite:///{root}/other/study.db")
    assert [s.name for s in by_url] == ["other"]


def test_list_studies_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"no such folder.*--root"):
        list_studies(root=tmp_path / "missing")
    with pytest.raises(StudyError, match="not a SQLAlchemy URL"):
        list_studies(storage="not a url")
    assert list_studies(root=tmp_path) == []


@pytest.mark.slow
def test_studies_command_json(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    _second_study(root)
    result = run_hpo(["studies", "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert set(listed) == {"tiny", "other"}
    tiny = _states(optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db"))
    assert listed["tiny"]["trials"] == 6 and listed["tiny"]["trials_by_state"] == tiny
    assert listed["other"]["trials"] == 3 and listed["other"]["trials_by_state"]["fail"] == 1


def test_studies_command_table_and_errors(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    _second_study(root)
    tiny = _states(optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db"))
    table = CliRunner().invoke(main, ["studies", "--root", str(root)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:2] == ["study", "direction"] and "\x1b[" not in table.output  # not a terminal
    counts = ", ".join(f"{n} {state}" for state, n in sorted(tiny.items()))
    assert any(line.startswith("tiny ") and counts in line for line in lines)

    missing = CliRunner().invoke(main, ["studies", "--root", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such folder" in missing.output
