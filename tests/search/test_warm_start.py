"""Warm start: `hpo run --from OLD:K` queues exactly the K best valid configurations as the new study's first trials;
`study.enqueue` does the same by hand."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.distributions import CategoricalDistribution, FloatDistribution

from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.errors import ConfigError
from hpo.search.warm_start import best_configurations, enqueue_configurations, parse_from
from tests.conftest import tiny_space


def _old_study(root: Path) -> None:
    """A finished study ``old`` (made with Optuna alone): lr 0.001..0.1, optimizer adam/sgd, values known."""
    (root / "old").mkdir(parents=True)
    study = optuna.create_study(study_name="old", storage=f"sqlite:///{root}/old/study.db", direction="maximize")
    dists = {"lr": FloatDistribution(1e-3, 1e-1, log=True), "optimizer": CategoricalDistribution(["adam", "sgd"])}
    for lr, optimizer, value in [(0.002, "adam", 0.7), (0.05, "adam", 0.9), (0.08, "sgd", 0.8), (0.004, "sgd", 0.6)]:
        study.add_trial(
            optuna.trial.create_trial(params={"lr": lr, "optimizer": optimizer}, distributions=dists, value=value)
        )


def test_the_k_best_configurations_keep_only_what_the_new_space_takes(tmp_path: Path, write_space) -> None:
    root = tmp_path / "studies"
    _old_study(root)
    assert best_configurations("old", 2, root=root, storage=None) == [
        {"lr": 0.05, "optimizer": "adam"},
        {"lr": 0.08, "optimizer": "sgd"},
    ]
    assert parse_from("old:3") == ("old", 3) and parse_from("old") == ("old", 5)
    with pytest.raises(ConfigError, match="STUDY:K"):
        parse_from("old:x")
    doc = tiny_space(
        params={"lr": {"type": "float", "low": 1e-3, "high": 6e-2, "log": True}, "optimizer": "adam", "momentum": 0.0}
    )
    exp = load_experiment(write_space(doc))
    study = optuna.create_study(direction="maximize")
    warm = enqueue_configurations(
        study, exp.space, best_configurations("old", 3, root=root, storage=None), "--from old"
    )
    assert warm is not None
    assert list(warm.queued) == [{"lr": 0.05}, {"lr": 0.002}]  # 0.08 is out of range; optimizer is fixed here
    assert any("lr=0.08" in d and "outside" in d for d in warm.dropped)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        {"lr": 0.05},
        {"lr": 0.002},
    ]
    assert enqueue_configurations(study, exp.space, [{"lr": 0.01}], "again") is None  # queued once only


@pytest.mark.slow
def test_from_queues_the_first_trials_of_a_new_study_through_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "studies"
    _old_study(root)
    doc = tiny_space(study={"name": "new", "n_trials": 3})
    doc["params"]["lr"] = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "space.yaml"), "--from", "old:2", "--root", str(root), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["warm_start"]["queued"] == [{"lr": 0.05, "optimizer": "adam"}, {"lr": 0.08, "optimizer": "sgd"}]
    new = optuna.load_study(study_name="new", storage=f"sqlite:///{root}/new/study.db")
    trials = sorted(new.trials, key=lambda t: t.number)
    assert len(trials) == 3  # the queued trials count towards n_trials
    assert trials[0].params["lr"] == 0.05 and trials[0].params["optimizer"] == "adam"
    assert trials[1].params["lr"] == 0.08 and trials[1].params["optimizer"] == "sgd"
