"""Opening a study: created once, resumed only when it optimises the same thing, and no password in errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo.config.experiment import load_experiment
from hpo.errors import StudyError
from hpo.study.access import create_or_resume_study
from tests.conftest import tiny_space
from tests.search.test_workers import postgres_url  # noqa: F401 (the fixture)

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask/tell, not optimize, here


def _first_ask(write_space, root: Path, name: str, worker_index: int) -> dict[str, object]:
    exp = load_experiment(write_space(tiny_space(study={"name": name, "sampler": {"name": "random", "seed": 3}})))
    study, _, _ = create_or_resume_study(exp, root=root, worker_index=worker_index)
    return study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)}).params


def test_open_creates_once_and_resumes(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    exp = load_experiment(write_space(tiny_space()))
    study, paths, url = create_or_resume_study(exp, root=root)
    study.enqueue_trial({"lr": 0.01})
    again, _, url_again = create_or_resume_study(exp, root=root)
    assert url == url_again == f"sqlite:///{paths.study_dir / 'study.db'}"
    assert again._study_id == study._study_id and len(again.trials) == 1
    assert again.user_attrs == {"metric": "val/auroc", "constraints": []}


def test_workers_get_different_seeds(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    first = _first_ask(write_space, root, "w0", worker_index=0)
    assert _first_ask(write_space, root, "w0b", worker_index=0) == first  # the seed is honoured
    assert _first_ask(write_space, root, "w1", worker_index=1) != first  # worker 1 does not repeat worker 0


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"metric": "val/loss"}, "is set to maximize, but .*other.yaml: study.metric asks to minimize"),
        ({"metric": "val/accuracy"}, "optimises 'val/auroc', but .*other.yaml: study.metric asks for 'val/accuracy'"),
        ({"constraints": ["val/recall >= 0.5"]}, r"constraints \[\], but .*other.yaml: study.constraints asks"),
    ],
)
def test_resuming_something_else_is_refused_and_changes_nothing(
    write_space, tmp_path: Path, study: dict[str, object], message: str
) -> None:
    root = tmp_path / "studies"
    opened, _, _ = create_or_resume_study(load_experiment(write_space(tiny_space())), root=root)
    opened.enqueue_trial({"lr": 0.01})  # a study with trials: its constraints can no longer change
    other = load_experiment(write_space(tiny_space(study=study), name="other.yaml"))
    with pytest.raises(StudyError, match=message) as info:
        create_or_resume_study(other, root=root)
    assert "other.yaml" in str(info.value) and "--study" in str(info.value)
    reloaded = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root / 'tiny' / 'study.db'}")
    assert reloaded.user_attrs == {"metric": "val/auroc", "constraints": []}
    assert reloaded.direction == optuna.study.StudyDirection.MAXIMIZE


def test_unreachable_storage_hides_the_password(write_space, tmp_path: Path) -> None:
    exp = load_experiment(write_space(tiny_space()))
    with pytest.raises(StudyError) as info:
        create_or_resume_study(exp, root=tmp_path / "studies", storage="postgresql+psycopg://bob:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_trial_after_own_tells_matches_a_fresh_read_with_another_worker_interleaved(
    tmp_path: Path, direction: str
) -> None:
    import random

    from hpo.study.access import best_trial, note_told
    from hpo.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    mine = optuna.create_study(storage=open_storage(url, create=True), study_name="s", direction=direction)
    other = optuna.load_study(storage=url, study_name="s")  # another worker on the same storage
    rng = random.Random(0)
    assert best_trial(mine) is None
    for _ in range(60):
        value = rng.choice([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # ties on purpose
        study = other if rng.random() < 0.3 else mine
        state = optuna.trial.TrialState.PRUNED if rng.random() < 0.2 else optuna.trial.TrialState.COMPLETE
        trial = study.ask()
        frozen = study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        if study is mine:
            note_told(mine, frozen)
        got = best_trial(mine)
        fresh = optuna.load_study(storage=url, study_name="s").best_trial
        assert got is not None and (got.number, got.value) == (fresh.number, fresh.value)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_several_tells_in_a_row_each_noted_keep_the_best_trial_exact(tmp_path: Path, direction: str) -> None:
    """A population's members are told one after another, each noted right after its tell, and then read (reported,
    published) one by one; another worker's trials come in between. best_trial always equals a fresh read."""
    import random

    from hpo.study.access import best_trial, note_told, recent_best_trial
    from hpo.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    mine = optuna.create_study(storage=open_storage(url, create=True), study_name="s", direction=direction)
    other = optuna.load_study(storage=url, study_name="s")
    sign = 1 if direction == "maximize" else -1
    rng = random.Random(2)
    assert best_trial(mine) is None
    states = [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.PRUNED]
    for _ in range(25):
        members = [mine.ask() for _ in range(rng.randint(1, 4))]
        for trial in members:
            if rng.random() < 0.2:  # another worker's trial completes between two tells
                other.tell(other.ask(), rng.choice([0.1, 0.5, 0.9]))
            state = rng.choice(states)
            value = rng.choice([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) if state == optuna.trial.TrialState.COMPLETE else None
            note_told(mine, mine.tell(trial, value, state=state))
            fresh = optuna.load_study(storage=url, study_name="s").best_trial
            recent = recent_best_trial(mine)
            assert recent is None or sign * recent.value <= sign * fresh.value
            if rng.random() < 0.3:
                assert best_trial(mine).number == fresh.number  # a read between two tells
        for _ in members:  # each member's report reads the best trial again
            fresh = optuna.load_study(storage=url, study_name="s").best_trial
            got = best_trial(mine)
            assert got is not None and (got.number, got.value) == (fresh.number, fresh.value)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_recent_best_trial_never_overstates_the_best_and_is_exact_after_a_read(tmp_path: Path, direction: str) -> None:
    """What the best-model publisher decides "cannot be the best" on: a value that does not beat the recent best does
    not beat the study's best, however many trials another worker completed since."""
    import random

    from hpo.study.access import best_trial, note_told, recent_best_trial
    from hpo.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    mine = optuna.create_study(storage=open_storage(url, create=True), study_name="s", direction=direction)
    other = optuna.load_study(storage=url, study_name="s")
    sign = 1 if direction == "maximize" else -1
    rng = random.Random(1)
    assert recent_best_trial(mine) is None
    stale = 0
    others_since_read = True
    for step in range(60):
        study = other if rng.random() < 0.4 else mine
        trial = study.ask()
        frozen = study.tell(trial, rng.choice([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]))
        if study is mine:
            note_told(mine, frozen)
        others_since_read |= study is other
        fresh = optuna.load_study(storage=url, study_name="s").best_trial
        recent = recent_best_trial(mine)
        assert recent is None or sign * recent.value <= sign * fresh.value  # None: nothing known to beat yet
        if not others_since_read:  # only this process's own tells since the last read: exact
            assert recent is not None and recent.number == fresh.number
        stale += recent is None or recent.value != fresh.value
        if step % 7 == 0:
            best_trial(mine)  # a read: exact again
            others_since_read = False
            assert getattr(recent_best_trial(mine), "number", None) == fresh.number
    assert stale > 0  # the other worker's better trials were not seen until a read


def _plain_counts(url: str, study_id: int, running_before: int | None) -> dict[Any, int]:
    import sqlalchemy
    from optuna.storages._rdb import models

    table = models.TrialModel
    query = sqlalchemy.select(table.state, sqlalchemy.func.count()).where(table.study_id == study_id)
    if running_before is not None:
        query = query.where(sqlalchemy.or_(table.state != TrialState.RUNNING, table.number < running_before))
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(query.group_by(table.state)).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_trial_counts_kept_for_settled_trials_match_a_full_count(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two workers and another study on one storage, trials created, queued, run and finished in a random order:
    the counts that re-read only the trials after the settled ones always equal a full count."""
    import random

    from hpo.study.access import trial_counts
    from hpo.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    mine = optuna.create_study(storage=open_storage(url, create=True), study_name="c")
    other = optuna.load_study(storage=url, study_name="c")
    elsewhere = optuna.create_study(storage=url, study_name="elsewhere")  # its trials interleave in the id order
    rng = random.Random(3)
    running: list[tuple[optuna.Study, optuna.trial.Trial]] = []
    for step in range(150):
        action = rng.random()
        study = rng.choice([mine, other, elsewhere])
        if action < 0.35 or not running:
            running.append((study, study.ask()))
        elif action < 0.45:
            study.enqueue_trial({}, skip_if_exists=False)  # waiting until an ask takes it
        else:
            owner, trial = running.pop(rng.randrange(len(running)))
            state = rng.choice([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
            owner.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
        before = rng.choice([None, step // 2])
        assert trial_counts(mine, running_before=before) == _plain_counts(url, mine._study_id, before), step
    assert set(trial_counts(mine)) >= {TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL}
