"""The best-model publisher with a population's siblings: a member that a sibling beats is never built or published,
unless that sibling is discarded (another worker failed it), in which case the member is checked like any trial."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.experiment import load_experiment
from hpo.data.loading import load_data
from hpo.search.promotion import BestModelPublisher
from hpo.study.access import create_or_resume_study
from hpo.study.artifacts import read_attached_files
from hpo.train.objective import Objective, TrainedModel
from tests.conftest import tiny_space


@pytest.fixture
def setup(write_space, tmp_path: Path):
    """(study, publisher, paths, a trained model to copy) for a study described by ``tiny_space(**overrides)``."""

    def make(**overrides: object) -> tuple[optuna.Study, BestModelPublisher, object, TrainedModel]:
        experiment = load_experiment(write_space(tiny_space(training={"max_epochs": 1}, **overrides)))
        data = load_data(experiment.data)
        study, paths, _ = create_or_resume_study(experiment, root=tmp_path / "studies")
        got: list[TrainedModel] = []
        objective = Objective(experiment, data, paths, on_complete=lambda trial, trained, siblings: got.append(trained))
        objective(optuna.trial.FixedTrial({"lr": 0.01, "n_layers": 1, "optimizer": "adam"}, number=0))
        return study, BestModelPublisher(experiment, data, paths), paths, got[0]

    return make


def _members(study: optuna.Study, model: TrainedModel, outcomes: list[dict]) -> list[tuple[optuna.Trial, TrainedModel]]:
    """Asked trials with copies of ``model`` carrying the given value(s) and constraints, as one population."""
    trials = [study.ask() for _ in outcomes]
    return [(t, replace(model, trial_number=t.number, **o)) for t, o in zip(trials, outcomes, strict=True)]


def _prepare_all(publisher: BestModelPublisher, members: list[tuple[optuna.Trial, TrainedModel]]) -> None:
    for trial, trained in members:
        publisher.prepare(trial, trained, [t for _, t in members if t is not trained])


def _best_trial_on_disk(paths) -> int:  # type: ignore[no-untyped-def]
    return int(json.loads((paths.best / "model.json").read_text())["trial"])


def test_a_member_beaten_by_a_sibling_is_neither_built_nor_published(setup) -> None:
    study, publisher, paths, model = setup()
    members = _members(study, model, [{"value": 0.8}, {"value": 0.9}, {"value": 0.7}])
    _prepare_all(publisher, members)
    attached = [read_attached_files(trial, paths) is not None for trial, _ in members]
    assert attached == [False, True, False]
    for trial, trained in members:
        study.tell(trial, trained.value)
    published = [publisher.publish(study, trial.number) for trial, _ in members]
    assert published == [False, True, False]
    assert _best_trial_on_disk(paths) == members[1][0].number


def test_minimize_and_ties(setup) -> None:
    """The direction decides who beats whom; equal siblings do not outclass each other."""
    study, publisher, paths, model = setup(study={"name": "tiny", "metric": "val/loss", "direction": "minimize"})
    members = _members(study, model, [{"value": 0.3}, {"value": 0.2}, {"value": 0.2}, {"value": 0.5}])
    _prepare_all(publisher, members)
    assert [read_attached_files(t, paths) is not None for t, _ in members] == [False, True, True, False]


def test_a_member_is_checked_again_when_the_sibling_that_beat_it_is_discarded(setup) -> None:
    """The better sibling was failed by another worker (the run loop discards it): the member is the study's best
    and is published, its files built then."""
    study, publisher, paths, model = setup()
    (first, better), (second, worse) = _members(study, model, [{"value": 0.9}, {"value": 0.8}])
    publisher.prepare(first, better, [worse])
    publisher.prepare(second, worse, [better])
    assert read_attached_files(second, paths) is None
    publisher.discard(first.number)
    study.tell(first, state=TrialState.FAIL)
    study.tell(second, worse.value)
    assert publisher.publish(study, second.number)
    assert _best_trial_on_disk(paths) == second.number


def test_an_infeasible_sibling_does_not_outclass(setup, write_space) -> None:
    study, publisher, paths, model = setup(
        study={"name": "tiny", "constraints": ["val/loss <= 10"]},
    )
    members = _members(
        study, model, [{"value": 0.95, "constraints": {"val/loss <= 10": 1.0}}, {"value": 0.8, "constraints": {}}]
    )
    _prepare_all(publisher, members)
    assert [read_attached_files(t, paths) is not None for t, _ in members] == [False, True]


def test_multi_objective_a_dominated_sibling_is_not_built(setup) -> None:
    study, publisher, paths, model = setup(
        study={
            "name": "tiny",
            "objectives": [
                {"metric": "val/auroc", "direction": "maximize"},
                {"metric": "val/loss", "direction": "minimize"},
            ],
        }
    )
    outcomes = [
        {"value": 0.9, "values": (0.9, 0.3)},
        {"value": 0.8, "values": (0.8, 0.4)},
        {"value": 0.7, "values": (0.7, 0.1)},
    ]
    members = _members(study, model, outcomes)
    _prepare_all(publisher, members)
    # 1 is dominated by 0; 0 and 2 trade one objective for the other
    assert [read_attached_files(t, paths) is not None for t, _ in members] == [True, False, True]
    for trial, trained in members:
        study.tell(trial, list(trained.values))
    assert [publisher.publish(study, t.number) for t, _ in members] == [True, False, True]
