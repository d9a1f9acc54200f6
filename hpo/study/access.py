"""Open a study and read what it holds: create-or-resume (``hpo run``) or load (every other command), trial counts
by state, the best trial, the Pareto front. The one module that opens studies."""

from __future__ import annotations

import weakref
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo.config.algorithms import build_pruner
from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.samplers import build_sampler
from hpo.study.storage import TrialCache, open_storage, redact_url, resolve_storage_url

if TYPE_CHECKING:
    from hpo.config.experiment import Experiment, StudySettings

__all__ = [
    "FINISHED_STATES",
    "best_trial",
    "count_finished",
    "create_or_resume_study",
    "is_constrained",
    "load_study",
    "pareto_front",
    "trial_counts",
    "trials_by_state",
]

#: Trials that use up the budget: a failed trial (an interrupted or crashed worker) does not, so it is run again.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def load_study(name: str, root: Path, storage: str | None) -> tuple[optuna.Study, StudyPaths, str]:
    """Open an existing study for reading: its Optuna study, its files and its storage URL.

    Raises:
        StudyError: the storage URL is malformed or in memory, the storage cannot be opened or read (a damaged
            database, one written by another Optuna version), or has no such study (the message lists the ones it
            has).
    """
    paths = StudyPaths(root, name)
    url = resolve_storage_url(paths, storage)
    rdb = open_storage(url, create=False)
    try:
        try:
            study = optuna.load_study(study_name=name, storage=rdb)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage=rdb)]
            raise StudyError(
                f"{redact_url(url)}: has no study named {name!r} (it has {names}); pass --study with one of those"
            ) from None
    except _READ_ERRORS as exc:
        raise _unreadable(url, name, exc) from None
    return study, paths, url


#: What reading a damaged database, or one that is not an Optuna storage, raises.
_READ_ERRORS = (sqlalchemy.exc.SQLAlchemyError, ValueError, TypeError, RuntimeError)


def _unreadable(url: str, name: str, exc: Exception) -> StudyError:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return StudyError(
        f"{redact_url(url)}: cannot read study {name!r} ({type(exc).__name__}: {detail}); check that it is an Optuna "
        "storage, not damaged, and that no other program is rewriting it"
    )


def trials_by_state(study: optuna.Study) -> dict[str, int]:
    """How many trials the study has in each state (``complete``, ``pruned``, ...), sorted by state name."""
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.state.name.lower()
        states[name] = states.get(name, 0) + 1
    return dict(sorted(states.items()))


def trial_counts(study: optuna.Study, running_before: int | None = None) -> dict[TrialState, int]:
    """How many trials the study has in each state, counted by the database in one query (one snapshot, no trial
    loaded: ``get_trials`` sorts and filters every trial in Python, 10 ms at trial 10,000); with ``running_before``,
    only running trials numbered below it count.

    On an RDB storage the count reads only the trials after the last ones this process found settled: trials that
    are finished, and all finished below them, never change state again, so their counts are kept (per study
    object) and the query walks the trial ids from there. Trials of a study become visible in id order (Optuna
    creates them under a lock on the study's row), so no trial can appear later below a settled one."""
    backend = getattr(study._storage, "_backend", None)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(backend, optuna.storages.RDBStorage):
        counts: dict[TrialState, int] = {}
        for t in study.get_trials(deepcopy=False):
            if running_before is None or t.state != TrialState.RUNNING or t.number < running_before:
                counts[t.state] = counts.get(t.state, 0) + 1
        return counts
    table = models.TrialModel
    settled_up_to, settled = _SETTLED.get(study, (0, {}))
    # ``study_id + 0``: the trial id range, not the (study, state) index, picks the rows (a few, not the whole study)
    mine = sqlalchemy.and_((table.study_id + 0) == study._study_id, table.trial_id > settled_up_to)
    first_open = (
        sqlalchemy.select(sqlalchemy.func.min(table.trial_id))
        .where(mine, table.state.in_([TrialState.RUNNING, TrialState.WAITING]))
        .scalar_subquery()
    )
    below = sqlalchemy.or_(first_open.is_(None), table.trial_id < first_open).label("settled")
    query = sqlalchemy.select(table.state, below, sqlalchemy.func.count(), sqlalchemy.func.max(table.trial_id))
    query = query.where(mine)
    if running_before is not None:
        query = query.where(sqlalchemy.or_(table.state != TrialState.RUNNING, table.number < running_before))

    def count() -> list[Any]:
        with backend.engine.connect() as connection:
            return list(connection.execute(query.group_by(table.state, below)))

    retrying = getattr(backend, "retrying", None)  # hpo's storage retries a lost connection (hpo.study.retry)
    rows = retrying(count) if retrying is not None else count()
    settled = dict(settled)
    counts = {}
    for state, is_settled, n, last in rows:
        if is_settled:
            settled[state] = settled.get(state, 0) + n
            settled_up_to = max(settled_up_to, last)
        else:
            counts[state] = n
    _SETTLED[study] = (settled_up_to, settled)
    for state, n in settled.items():
        counts[state] = counts.get(state, 0) + n
    return counts


#: Per open study: the id up to which its trials are all finished, and how many of them are in each state.
_SETTLED: weakref.WeakKeyDictionary[optuna.Study, tuple[int, dict[TrialState, int]]] = weakref.WeakKeyDictionary()


def count_finished(study: optuna.Study, counts: dict[TrialState, int] | None = None) -> int:
    """Trials that count towards ``n_trials`` (complete or pruned); ``counts`` as for :func:`best_trial`."""
    counts = trial_counts(study) if counts is None else counts
    return sum(counts.get(state, 0) for state in FINISHED_STATES)


#: The best trial of each open study as last read, and how many trials were complete then.
_BEST: weakref.WeakKeyDictionary[optuna.Study, tuple[int, FrozenTrial | None]] = weakref.WeakKeyDictionary()


def best_trial(study: optuna.Study, counts: dict[TrialState, int] | None = None) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study; None for none yet, or for a multi-objective study.

    Read again only when the number of complete trials changed: trials are never removed and a finished trial never
    changes (its constraints are recorded before it completes), so the same count means the same best trial.
    ``counts``: the study's :func:`trial_counts`, when the caller has just read them.
    """
    if len(study.directions) > 1:
        return None
    complete = (trial_counts(study) if counts is None else counts).get(TrialState.COMPLETE, 0)
    known = _BEST.get(study)
    if known is not None and known[0] == complete:
        return known[1]
    told = _TOLD.pop(study, None)
    if told is not None and told[0] == complete:  # the one trial completed since is the one this process told
        _BEST[study] = told
        return told[1]
    try:
        best: FrozenTrial | None = study.best_trial
    except ValueError:  # no completed trial, or every completed trial breaks a constraint
        best = None
    _BEST[study] = (complete, best)
    return best


def recent_best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best trial as this process last knew it (read by :func:`best_trial`, or told since), without a read when it
    knows one; else :func:`best_trial`. Another worker may have completed a better trial since, never a worse one:
    a value that does not beat it does not beat the study's best either."""
    for known in (_TOLD, _BEST):
        if study in known:
            return known[study][1]
    return best_trial(study)


#: The best trial once the trial this process just told is counted, and the complete count that makes it so.
_TOLD: weakref.WeakKeyDictionary[optuna.Study, tuple[int, FrozenTrial | None]] = weakref.WeakKeyDictionary()


def note_told(study: optuna.Study, trial: FrozenTrial) -> None:
    """Tell :func:`best_trial` about ``trial``, just told: when the complete count then is one more than at its last
    read, ``trial`` is the only trial completed since, and the best is the better of the two (ties keep the earlier),
    without reading the study again. Trials with constraints are left to a read (feasibility decides there).

    Call it right after each tell, before the study is read again: a count read after the tell already includes
    ``trial``, and one more than it would then be a count that no single new trial makes. Several trials told in a
    row (the members of a population) build on each other's note: after k of them, the count is k more."""
    known = _TOLD.get(study) or _BEST.get(study)
    if known is None or len(study.directions) > 1 or trial.state != TrialState.COMPLETE or trial.value is None:
        return
    if trial.constraints:
        return
    count, best = known
    better = (
        best is None
        or best.value is None
        or (trial.value > best.value if study.direction == StudyDirection.MAXIMIZE else trial.value < best.value)
    )
    _TOLD[study] = (count + 1, trial if better else best)


def pareto_front(study: optuna.Study) -> list[tuple[int, list[float]]]:
    """(number, values) of the feasible Pareto-optimal trials of a multi-objective study, as the storage has it."""
    return [(t.number, list(t.values)) for t in study.best_trials]


def is_constrained(study: optuna.Study) -> bool:
    """True when the study records constraints (its best trial is then its best *feasible* trial)."""
    return bool(study.user_attrs.get("constraints"))


def create_or_resume_study(
    experiment: Experiment, *, root: Path = Path("studies"), storage: str | None = None, worker_index: int = 0
) -> tuple[optuna.Study, StudyPaths, str]:
    """Create the study of ``experiment`` in its storage, or load it if it exists (checking it is compatible).

    ``worker_index`` offsets the sampler's seed so that parallel workers do not propose the same first trials.

    Raises:
        StudyError: the storage cannot be opened, or the existing study optimises something else.
    """
    settings = experiment.study
    paths = StudyPaths(root, settings.name)
    url = resolve_storage_url(paths, storage)
    rdb = open_storage(
        url, create=True, heartbeat_interval=settings.heartbeat_interval, grace_period=settings.grace_period
    )
    sampler_settings = settings.sampler
    if worker_index and sampler_settings.seed is not None:
        sampler_settings = replace(
            sampler_settings, options={**sampler_settings.options, "seed": sampler_settings.seed + worker_index}
        )
    study = optuna.create_study(
        study_name=settings.name,
        storage=TrialCache(rdb),
        sampler=build_sampler(sampler_settings),
        pruner=build_pruner(settings.pruner),
        directions=[
            StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE for d in settings.directions
        ],
        load_if_exists=True,
    )
    _check_compatible(study, experiment, url)
    try:
        paths.study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(
            f"{paths.study_dir}: cannot create the study's folder ({exc.strerror or exc}); the study itself is in "
            f"{redact_url(url)}. Pass a writable --root (the folder holding one folder per study)"
        ) from None
    return study, paths, url


def _check_compatible(study: optuna.Study, experiment: Experiment, url: str) -> None:
    """Refuse to resume a study that optimises other metrics or directions, or under other constraints."""
    settings = experiment.study
    have = [d.name.lower() for d in study.directions]
    if have != list(settings.directions):
        shown = have[0] if len(have) == 1 else have
        wanted = settings.direction if len(settings.directions) == 1 else list(settings.directions)
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and is set to {shown}, but "
            f"{experiment.file}: {_key(settings)} asks to {wanted}; use another study name (--study) or the same "
            f"{'direction' if len(have) == 1 else 'objectives and directions'}"
        )
    attrs = study.user_attrs
    metrics = [o.metric for o in settings.objectives]
    recorded: Any = attrs.get("objectives", [attrs["metric"]] if "metric" in attrs else None)
    if recorded is None:
        study.set_user_attr("metric", settings.metric if len(metrics) == 1 else ", ".join(metrics))
        if len(metrics) > 1:
            study.set_user_attr("objectives", metrics)
    elif recorded != metrics:
        shown = recorded[0] if len(recorded) == 1 else recorded
        asked = metrics[0] if len(metrics) == 1 else metrics
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and optimises {shown!r}, but "
            f"{experiment.file}: {_key(settings)} asks for {asked!r}; use another study name (--study) or "
            f"{'that metric' if len(metrics) == 1 else 'those objectives, in that order'}"
        )
    wanted_constraints = [c.text for c in settings.constraints]
    had: Any = attrs.get("constraints")
    if had is None and (not wanted_constraints or not study.get_trials(deepcopy=False)):
        study.set_user_attr("constraints", wanted_constraints)
    elif (had or []) != wanted_constraints:
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists with the constraints {had or []}, but "
            f"{experiment.file}: study.constraints asks for {wanted_constraints}; the feasibility of its earlier "
            "trials was decided by those, so use another study name (--study) or the same constraints"
        )


def _key(settings: StudySettings) -> str:
    """The key of the search-space file that says what the study optimises."""
    return "study.objectives" if settings.multi_objective else "study.metric"
