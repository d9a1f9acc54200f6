"""One number per trial: a pruned trial's value is the same in Optuna, TensorBoard's hp_metric and `hpo run --json`,
and every metric is its own user attribute, so optuna-dashboard can sort and filter by it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from hpo.cli import main
from tests.conftest import read_tensorboard_run, tiny_space
from tests.views.test_serving import serving

pytestmark = pytest.mark.slow


def test_a_pruned_trial_has_one_value_everywhere(tmp_path: Path) -> None:
    doc = tiny_space(
        study={"name": "one", "n_trials": 6, "pruner": {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 0}}
    )
    doc["params"]["lr"] = {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "one.yaml"), "--root", str(tmp_path / "studies"), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = {t["number"]: t for t in json.loads(result.stdout)["trials"]}
    study = optuna.load_study(study_name="one", storage=f"sqlite:///{tmp_path}/studies/one/study.db")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the study should prune at least one trial"
    for trial in study.trials:
        assert printed[trial.number]["value"] == trial.value
        scalars, _, _ = read_tensorboard_run(tmp_path / "studies" / "one" / "tb" / f"trial_{trial.number:04d}")
        assert scalars["hp_metric"][-1][1] == pytest.approx(trial.value, abs=1e-7)
        assert all(step > 0 or value != 0.0 for step, value in scalars["hp_metric"])  # no placeholder point
    for trial in pruned:
        assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]
        assert "last reported" in result.stderr or printed[trial.number]["state"] == "pruned"


def test_each_metric_is_a_column_of_the_dashboard(tiny_study: Path) -> None:
    with serving(["dashboard", "--study", "tiny", "--root", str(tiny_study), "--port", "0"], tiny_study) as (_, where):
        base = f"http://127.0.0.1:{where['port']}/api/studies"
        with urllib.request.urlopen(base, timeout=30) as response:
            study_id = json.load(response)["study_summaries"][0]["study_id"]
        with urllib.request.urlopen(f"{base}/{study_id}?after=0", timeout=30) as response:
            detail = json.load(response)
    complete = [t for t in detail["trials"] if t["state"].lower() == "complete"]
    assert complete
    for trial in complete:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        for metric in ("val/auroc", "val/loss", "val/accuracy", "val/f1"):
            assert metric in attrs and float(attrs[metric]) >= 0
    keys = {a["key"] for a in detail.get("union_user_attrs", [])}
    assert not keys or "val/auroc" in keys
