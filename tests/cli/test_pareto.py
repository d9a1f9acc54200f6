"""The commands on multi-objective studies: hpo best's front table, bad multi-objective files, hpo run's output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner

from hpo.best.folder import trial_folder
from hpo.cli import main
from tests.conftest import pareto_space, run_hpo


def test_best_lists_the_front_as_a_table_and_as_json(pareto_study: Path) -> None:
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{pareto_study}/pareto/study.db")
    front = sorted(study.best_trials, key=lambda t: t.number)
    text = CliRunner().invoke(main, ["best", "--study", "pareto", "--root", str(pareto_study)])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert "maximize val/auroc, minimize model/params" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    assert lines[header].split() == ["trial", "val/auroc", "model/params", "feasible", "folder"]
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(front)]]
    for row, trial in zip(rows, front, strict=True):
        assert row[0] == str(trial.number) and float(row[1]) == pytest.approx(trial.values[0], rel=1e-5)
        assert float(row[2]) == trial.values[1] and row[3] == "yes"
        assert row[4] == str(pareto_study / "pareto" / "best" / trial_folder(trial.number))

    as_json = CliRunner().invoke(main, ["best", "--study", "pareto", "--root", str(pareto_study), "--json"])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.output)
    assert doc["objectives"] == [
        {"metric": "val/auroc", "direction": "maximize"},
        {"metric": "model/params", "direction": "minimize"},
    ]
    assert [r["trial"] for r in doc["pareto_front"]] == [t.number for t in front]
    for row, trial in zip(doc["pareto_front"], front, strict=True):
        assert list(row["values"].values()) == trial.values and row["feasible"] is True
        assert Path(row["folder"]).name == trial_folder(trial.number)


def test_studies_shows_the_size_of_the_front(pareto_study: Path) -> None:
    result = CliRunner().invoke(main, ["studies", "--root", str(pareto_study), "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{pareto_study}/pareto/study.db")
    assert entry["direction"] == "maximize, minimize" and entry["metric"] == "val/auroc, model/params"
    assert entry["pareto_front"] == len(study.best_trials) and entry["best_trial"] is None


@pytest.mark.parametrize(
    ("study", "expected"),
    [
        ({"pruner": {"name": "hyperband"}}, "study.pruner: Optuna does not prune multi-objective trials"),
        ({"constraints": ["val/recall => 0.9"]}, "study.constraints[0]: cannot read 'val/recall => 0.9'"),
        ({"objectives": [{"metric": "val/auroc"}, {"metric": "model/size"}]}, "study.objectives[1].metric"),
        ({"metric": "val/auroc"}, "study.metric: cannot be combined with study.objectives"),
    ],
)
def test_bad_multi_objective_files_exit_2_and_write_nothing(tmp_path: Path, study: dict, expected: str) -> None:
    doc = pareto_space()
    doc["study"].update(study)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["run", str(space), "--root", str(tmp_path / "studies")])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {space}: ") and expected in result.output
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow
def test_run_then_best_on_a_two_objective_study(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(pareto_space(n_trials=2)))
    run = run_hpo(["run", "space.yaml", "--json"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "pruning is off" in run.stderr
    trial_lines = [line for line in run.stderr.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 2 and all("val/auroc=" in line and "model/params=" in line for line in trial_lines)
    result = json.loads(run.stdout)
    study = optuna.load_study(study_name="pareto", storage="sqlite:///" + str(tmp_path / "studies/pareto/study.db"))
    assert result["pareto_front"] == sorted(t.number for t in study.best_trials)
    assert result["best_trial"] is None
    best = run_hpo(["best", "--study", "pareto", "--json"], cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert [r["trial"] for r in json.loads(best.stdout)["pareto_front"]] == result["pareto_front"]


def test_predict_uses_one_trial_of_the_front(pareto_study: Path, tmp_path: Path) -> None:
    import hpo

    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{pareto_study}/pareto/study.db")
    number = min(t.number for t in study.best_trials)
    chosen = hpo.load_best("pareto", root=pareto_study, trial=number)
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(chosen.feature_names) + "\n" + ",".join(["1.0"] * 30) + "\n")
    args = ["predict", str(rows), "--root", str(pareto_study), "--study", "pareto", "--json"]
    result = CliRunner().invoke(main, [*args, "--trial", str(number)])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "rows.predictions.csv").read_text().splitlines()
    assert float(written[1].split(",")[1]) == pytest.approx(float(chosen.predict_proba(_frame(rows))[0]))
    if len(study.best_trials) > 1:
        ambiguous = CliRunner().invoke(main, args)
        assert ambiguous.exit_code == 2 and "predict --trial N" in ambiguous.output


def _frame(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path)


@pytest.mark.parametrize("objectives", [1, 2])
def test_run_says_when_no_trial_is_feasible(tmp_path: Path, objectives: int) -> None:
    doc = pareto_space(n_trials=2, constraints=["model/params <= 30"])  # 30 features: at least 31 parameters
    if objectives == 1:
        del doc["study"]["objectives"]
    doc["training"]["max_epochs"] = 1
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(doc))
    root = tmp_path / "studies"
    result = CliRunner().invoke(main, ["run", str(space), "--root", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        f"No feasible completed trial yet, so nothing is in {root / 'pareto' / 'best'} (constraints: "
        "model/params <= 30); run more trials (--n-trials) or loosen the constraints"
    ) in result.output
    assert result.output.count("[infeasible: model/params <= 30]") == 2
    best = root / "pareto" / "best"
    if objectives == 1:
        assert not best.exists()
    else:  # an empty front: front.json lists no trial, and there is no weights folder
        assert [p.name for p in best.iterdir()] == ["front.json"]
        assert json.loads((best / "front.json").read_text())["trials"] == []


def test_best_and_report_point_at_the_folders_of_the_front(pareto_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(pareto_study / "pareto", root / "pareto")
    folders = sorted(p for p in (root / "pareto" / "best").iterdir() if p.is_dir())
    shutil.rmtree(folders[0])  # deleted by hand on this host: not "on another host"
    shown = CliRunner().invoke(main, ["best", "--study", "pareto", "--root", str(root)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith(f"{int(folders[0].name[6:])} "))
    assert row.endswith("missing: written on this host, then deleted (or under another --root)"), row
    report = CliRunner().invoke(
        main, ["report", "--study", "pareto", "--root", str(root), "--out", str(tmp_path / "r")], catch_exceptions=False
    )
    assert report.exit_code == 0, report.output
    best = root / "pareto" / "best"
    assert f"Reliability diagrams: one per Pareto-optimal trial, {best}/trial_NNNN/" in report.output
    assert "No reliability diagram" not in report.output
