"""Command-line overrides (``key.path=value``) are applied before validation and checked like the file's keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.config.overrides import apply_overrides, is_override
from hpo.errors import ConfigError
from tests.conftest import tiny_space


def test_overrides_set_nested_keys_dotted_names_and_yaml_values() -> None:
    doc = {"study": {"n_trials": 3}, "params": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}}
    out = apply_overrides(
        doc,
        ["study.n_trials=50", "params.lr.high=0.3", "training.max_epochs=5", "params.preprocessing.numeric=robust"],
    )
    assert out["study"]["n_trials"] == 50 and out["params"]["lr"]["high"] == 0.3
    assert out["training"] == {"max_epochs": 5} and out["params"]["preprocessing.numeric"] == "robust"
    assert doc["study"]["n_trials"] == 3  # the file's document is not changed
    with pytest.raises(ConfigError, match=re.escape("override 'params.lr.high.x=1': params.lr.high is 0.1")):
        apply_overrides(doc, ["params.lr.high.x=1"])
    with pytest.raises(ConfigError, match=re.escape("must be key.path=value")):
        apply_overrides(doc, ["=3"])
    assert is_override("training.max_epochs=5") and not is_override("search_spaces/x.yaml")


def test_an_override_is_validated_like_a_key_of_the_file(write_space) -> None:
    path = write_space(tiny_space())
    exp = load_experiment(path, ("training.max_epochs=2", "params.lr.high=0.05"))
    assert exp.training.max_epochs == 2 and exp.overrides == ("training.max_epochs=2", "params.lr.high=0.05")
    with pytest.raises(ConfigError, match=r"training.max_epochs: must be >= 1.*overrides training.max_epochs=0"):
        load_experiment(path, ("training.max_epochs=0",))
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        load_experiment(path, ("bogus=1",))


def test_bad_overrides_exit_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(tiny_space()), encoding="utf-8")
    for override, message in (
        ("training.max_epochs=-1", "training.max_epochs"),
        ("params.nonsense=3", "nonsense"),
        ("study.n_trials", "must be key.path=value"),
    ):
        result = CliRunner().invoke(main, ["run", str(tmp_path / "space.yaml"), override, "--root", str(tmp_path)])
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "tiny").exists()


@pytest.mark.slow
def test_overrides_change_the_run(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(tiny_space()), encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "space.yaml"),
            "study.n_trials=2",
            "training.max_epochs=1",
            "--root",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["finished"] == 2
    card = json.loads((tmp_path / "tiny" / "best" / "model.json").read_text())
    assert card["best_epoch"] == 0  # one epoch only
