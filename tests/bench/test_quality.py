"""The quality benchmark's pieces that decide its figures: the default configuration it trains, ranks and ties."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import quality
from hpo.config.experiment import parse_experiment
from hpo.config.space import FixedParam


def test_the_default_configuration_is_the_first_enqueued_trial_with_every_parameter_fixed(tmp_path: Path) -> None:
    base = quality.default_space()
    first = base["study"]["enqueue"][0]
    doc = quality.fixed_space(base)
    assert "enqueue" not in doc["study"]
    assert all(not isinstance(v, dict) for v in doc["params"].values())
    assert {k: doc["params"][k] for k in first} == first
    assert "momentum" not in doc["params"]  # conditional on sgd, which the default does not use
    doc["data"] = {"source": "breast_cancer"}
    exp = parse_experiment(doc, tmp_path / "default.yaml")  # a valid file: one trial trains exactly that
    assert all(isinstance(p, FixedParam) for p in exp.space.params)


def test_each_ablation_changes_only_what_it_says() -> None:
    methods = {m.name: m for m in quality.methods(5)}
    default = methods["hpo, default configuration"].space
    assert default is not None
    for method in methods.values():
        if method.kind != "ablation" or "previous" in method.name:
            continue
        assert method.space is not None and method.n_trials == 1
        changed = {k for k in default["params"] if method.space["params"][k] != default["params"][k]}
        assert len(changed) == 1, (method.name, changed)
    assert methods["hpo, tuned"].n_trials == methods["HistGradientBoosting, tuned"].n_trials == 5


def test_ranks_share_ties_and_records_count_them() -> None:
    assert quality._ranks([0.9, 0.8, 0.7]) == [1.0, 2.0, 3.0]
    assert quality._ranks([0.9, 0.9005, 0.7]) == [1.5, 1.5, 3.0]  # within TIE
    assert quality._record({"a": 0.9, "b": 0.8, "c": 0.7}, {"a": 0.8, "b": 0.8001, "c": 0.75}) == (1, 1, 1)
    assert quality._signed(-0.00001) == "+0.0000" and quality._signed(-0.0061) == "-0.0061"


@pytest.mark.parametrize("name", ["titanic", "chile"])
def test_data_sets_are_binary_tables_with_their_target(name: str) -> None:
    dataset = next(d for d in quality.DATASETS if d.name == name)
    frame = dataset.frame()
    assert "rownames" not in frame.columns
    assert set(frame[dataset.target].dropna()) >= {dataset.positive} and frame[dataset.target].nunique() == 2
