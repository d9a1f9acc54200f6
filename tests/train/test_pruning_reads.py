"""The view a population's pruner decides on each epoch gives the decisions Optuna's own should_prune gives."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.study.storage import open_storage
from hpo.train.pruning_reads import CompleteTrials, StudySnapshot, pruner_reads


def _study(tmp_path: Path, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", create=True)
    return optuna.create_study(study_name="s", storage=storage, direction="maximize", pruner=pruner)


def _finish(study: optuna.Study, rng: random.Random, epochs: int, state: TrialState = TrialState.COMPLETE) -> None:
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    for step in range(epochs):
        trial.report(rng.random(), step)
    study.tell(trial, rng.random() if state == TrialState.COMPLETE else None, state=state)


def test_percentile_decisions_equal_optunas_own_and_see_trials_completed_elsewhere(tmp_path: Path) -> None:
    rng = random.Random(0)
    study = _study(tmp_path, optuna.pruners.PercentilePruner(40.0, n_startup_trials=5, n_warmup_steps=1))
    for _ in range(3):
        _finish(study, rng, 6)
    _finish(study, rng, 3, TrialState.PRUNED)
    members = [study.ask() for _ in range(12)]
    for member in members:
        member.suggest_float("x", 0, 1)
    reads = pruner_reads(study)
    assert isinstance(reads.__self__, CompleteTrials)  # type: ignore[attr-defined]
    other = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")  # another worker
    decisions = []
    for step in range(6):
        for member in members:
            member.report(rng.random(), step)
        if step == 2:
            for _ in range(4):  # past n_startup_trials: pruning starts, and only the fresh view knows
                _finish(other, rng, 6)
        view = reads()
        ours = [view.prune(m) for m in members]
        assert ours == [StudySnapshot(study).prune(m) for m in members]
        assert ours == [m.should_prune() for m in members]  # Optuna's own, one full read per member
        decisions += ours
    assert True in decisions and False in decisions


@pytest.mark.parametrize(
    "pruner", [optuna.pruners.SuccessiveHalvingPruner(), optuna.pruners.HyperbandPruner(), optuna.pruners.NopPruner()]
)
def test_other_pruners_read_every_trial_once_per_epoch(tmp_path: Path, pruner: optuna.pruners.BasePruner) -> None:
    study = _study(tmp_path, pruner)
    assert isinstance(pruner_reads(study)(), StudySnapshot)


def test_a_study_in_memory_reads_every_trial_once_per_epoch() -> None:
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner())
    assert isinstance(pruner_reads(study)(), StudySnapshot)
