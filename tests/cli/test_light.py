"""The light commands never import Lightning (nor torch): `--help`, `best`, `studies`, `report`, a bad search-space
file, bad data, and the rerun of a finished study, each run in-process in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution

from tests.conftest import REPO

# Runs the CLI in-process (click's standalone_mode=False), then reports what it imported.
_PROBE = """
import json, sys
from hpo.cli import main
try:
    main.main(sys.argv[1:], standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "lightning": "pytorch_lightning" in sys.modules, "torch": "torch" in sys.modules}))
"""


def _probe(args: list[str], cwd: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished one-trial study ``light`` (made with Optuna alone) and the files that describe it."""
    root = tmp_path_factory.mktemp("light")
    (root / "data.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)), encoding="utf-8")
    space = {
        "study": {"name": "light", "n_trials": 1, "metric": "val/auroc"},
        "data": {"path": "data.csv", "target": "y"},
        "training": {"max_epochs": 1},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    }
    (root / "space.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    (root / "bad_space.yaml").write_text("study: {name: x}\nbogus: 1\n", encoding="utf-8")
    (root / "bad.csv").write_text("a,b,y\n1,2,\n3,4,1\n", encoding="utf-8")
    (root / "bad_data.yaml").write_text(
        yaml.safe_dump({**space, "study": {"name": "bad"}, "data": {"path": "bad.csv", "target": "y"}}),
        encoding="utf-8",
    )
    (root / "studies" / "light").mkdir(parents=True)
    study = optuna.create_study(
        study_name="light", storage=f"sqlite:///{root}/studies/light/study.db", direction="maximize"
    )
    study.set_user_attr("metric", "val/auroc")
    study.set_user_attr("constraints", [])
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1, log=True)}, value=0.75
        )
    )
    return root


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["best", "--study", "light"], 0),
        (["best", "--study", "light", "--json"], 0),
        (["studies"], 0),
        (["report", "--study", "light"], 0),
        (["run", "bad_space.yaml"], 2),
        (["run", "bad_data.yaml"], 2),
        (["run", "space.yaml"], 0),  # the study has its one trial: nothing to train
    ],
)
def test_light_commands_never_import_lightning_or_torch(workdir: Path, args: list[str], code: int) -> None:
    seen = _probe(args, workdir)
    assert seen["code"] == code
    assert seen["lightning"] is False
    assert seen["torch"] is False


def test_a_finished_study_rerun_reports_it_and_trains_nothing(workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hpo.cli", "run", "space.yaml", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["finished"], result["budget"], result["ran"], result["best_value"]) == (1, 1, 0, 0.75)
    assert not (workdir / "studies" / "light" / "tb").exists()
