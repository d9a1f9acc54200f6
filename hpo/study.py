"""Drive an Optuna study: create or resume it, run the remaining trial budget, promote the best weights."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo import overview
from hpo.algorithms import build_pruner, build_sampler
from hpo.ask_lock import AskLock
from hpo.config import Experiment
from hpo.data import load_data
from hpo.errors import StudyError
from hpo.objective import Objective, training_device
from hpo.paths import StudyPaths
from hpo.promotion import BestModelPublisher
from hpo.storage import open_storage, redact_url, resolve_storage_url
from hpo.weights import read_card

__all__ = [
    "FINISHED_STATES",
    "BestSummary",
    "RunResult",
    "TrialReport",
    "best_summary",
    "count_finished",
    "describe_best",
    "load_study",
    "open_study",
    "run_study",
    "study_result",
]

#: Trials that use up the budget: a failed trial (an interrupted or crashed worker) does not, so it is run again.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class TrialReport:
    """What happened in one trial, for progress output."""

    number: int
    state: str
    value: float | None
    reason: str | None
    seconds: float
    finished: int
    budget: int | None
    best_value: float | None
    best_trial: int | None
    promoted: bool
    values: tuple[float, ...] | None = None  # every objective's value (multi-objective studies)
    front: tuple[int, ...] | None = None  # the Pareto front after this trial (multi-objective studies)


@dataclass(frozen=True)
class RunResult:
    """The state of a study at the end of ``hpo run``."""

    study: str
    storage: str
    finished: int
    budget: int | None
    ran: int
    best_trial: int | None
    best_value: float | None
    best_dir: Path | None
    stopped_early: bool
    front: tuple[int, ...] | None = None  # the Pareto-optimal trials (multi-objective studies)


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials`` (complete or pruned)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def _best(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study; None for none yet, or for a multi-objective study."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:
        return None


def _front(study: optuna.Study) -> list[tuple[int, list[float]]]:
    """(number, values) of the feasible Pareto-optimal trials of a multi-objective study, as the storage has it."""
    return [(t.number, list(t.values)) for t in study.best_trials]


def load_study(name: str, root: Path, storage: str | None) -> tuple[optuna.Study, StudyPaths, str]:
    """Open an existing study for reading (:func:`hpo.overview.open_study`).

    Raises:
        StudyError: no such study in the storage (the message lists the ones there are).
    """
    return overview.open_study(name, root, storage)


def open_study(
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
        storage=rdb,
        sampler=build_sampler(sampler_settings),
        pruner=build_pruner(settings.pruner),
        directions=[
            StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE for d in settings.directions
        ],
        load_if_exists=True,
    )
    _check_compatible(study, experiment, url)
    paths.study_dir.mkdir(parents=True, exist_ok=True)
    return study, paths, url


class _SurplusTrialError(Exception):
    """This trial was asked for after other workers had already claimed the whole budget."""


def run_study(
    experiment: Experiment,
    *,
    root: Path = Path("studies"),
    storage: str | None = None,
    on_trial_end: Callable[[TrialReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    worker_index: int = 0,
    threads: int | None = None,
    poll_seconds: float = 1.0,
) -> RunResult:
    """Create or resume the study of ``experiment`` and run it until ``n_trials`` trials have finished.

    Everything that can be checked is checked before anything is written: the data is read first, then the storage
    is opened, then outputs appear under ``root/<study>/``. Any number of workers (processes or hosts) may run this
    on the same storage at once: together they finish exactly ``n_trials`` trials. A trial whose worker died is
    failed once its heartbeat is stale and re-run with the same parameters by a live worker.

    Args:
        experiment: a validated search-space file.
        root: the folder holding one folder per study.
        storage: a SQLAlchemy URL; default ``$HPO_STORAGE``, else ``sqlite:///<root>/<study>/study.db``.
        on_trial_end: called after every trial with a :class:`TrialReport`.
        should_stop: polled between trials; True ends the run (the budget is left for the next run).
        worker_index: this worker's number among parallel workers (offsets the sampler seed).
        threads: torch CPU threads for this process (default: torch's own choice).
        poll_seconds: how often to look again while other workers' trials hold the rest of the budget.

    Raises:
        DataError, StudyError: bad data, or a storage or study that cannot be used.
    """
    settings = experiment.study
    data = load_data(experiment.data)
    training_device(experiment.training.accelerator, f"{experiment.file}: training.accelerator")
    study, paths, url = open_study(experiment, root=root, storage=storage, worker_index=worker_index)
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    budget = settings.n_trials
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    publisher = BestModelPublisher(experiment, data, paths)
    objective = Objective(experiment, data, paths, on_complete=publisher.prepare)
    ran = 0
    stopped = False
    started = time.monotonic()

    ask_lock = AskLock(url, settings.name)

    def claimed_objective(trial: optuna.Trial) -> float | list[float]:
        ask_lock.release()  # the trial exists now: the next worker may count it and ask
        # Without a lock spanning the workers, two of them may both have seen budget left: the later trial gives way.
        if budget is not None and not ask_lock.exclusive and _budget_taken(study, trial.number, budget):
            trial.set_user_attr("fail_reason", "surplus: other workers had already claimed the whole budget")
            raise _SurplusTrialError(f"trial {trial.number} not run: the budget of {budget} trials is already claimed")
        return objective(trial)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal ran, started
        ran += 1
        promoted = False
        trained, objective.last_trained = objective.last_trained, None
        if trial.state == TrialState.COMPLETE and trained is not None and trained.trial_number == trial.number:
            if settings.multi_objective:
                promoted = publisher.promote_front(trained, lambda: _front(study))
            elif trained.feasible:
                promoted = publisher.promote(trained, lambda n: _is_best(study, n))
        if on_trial_end is not None:
            best = _best(study)
            reason = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("fail_reason")
            complete = trial.state == TrialState.COMPLETE
            on_trial_end(
                TrialReport(
                    trial.number,
                    trial.state.name.lower(),
                    trial.values[0] if complete else None,
                    reason,
                    time.monotonic() - started,
                    count_finished(study),
                    budget,
                    best.value if best else None,
                    best.number if best else None,
                    promoted,
                    tuple(trial.values) if complete and settings.multi_objective else None,
                    tuple(n for n, _ in _front(study)) if settings.multi_objective else None,
                )
            )
        started = time.monotonic()

    waiting_since: float | None = None
    while True:
        if should_stop is not None and should_stop():
            stopped = True
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if budget is not None:
            _fail_stale_trials(study)
            ask_lock.acquire()
            finished, running = _claimed(study)
            if finished >= budget or finished + running >= budget:
                ask_lock.release()
                if finished >= budget:
                    break
                # Other workers hold the rest of the budget; wait in case one of them dies and its trial is retried.
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since > 2 * settings.grace_period + 60:
                    raise StudyError(_stuck_message(study, url, running))
                time.sleep(poll_seconds)
                continue
        waiting_since = None
        started = time.monotonic()
        try:
            _optimize_one(study, claimed_objective, after_trial, paths)
        finally:
            ask_lock.release()
    return study_result(study, paths, url, budget, ran, stopped)


def _optimize_one(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float | list[float]],
    after_trial: Callable[[optuna.Study, FrozenTrial], None],
    paths: StudyPaths,
) -> None:
    """Run one trial; a disk that cannot be written becomes a StudyError (Optuna has marked the trial failed)."""
    try:
        study.optimize(
            objective,
            n_trials=1,
            callbacks=[after_trial],
            catch=(_SurplusTrialError,),
            gc_after_trial=False,
            show_progress_bar=False,
        )
    except OSError as exc:
        raise StudyError(
            f"{paths.study_dir}: cannot write the trial's outputs ({exc.strerror or exc}: {exc.filename}); the trial "
            "is marked failed and will be run again. Free disk space or make the folder writable, then rerun."
        ) from None


def study_result(
    study: optuna.Study, paths: StudyPaths, url: str, budget: int | None, ran: int, stopped: bool
) -> RunResult:
    """The :class:`RunResult` of a study as its storage has it now."""
    best = _best(study)
    return RunResult(
        study.study_name,
        redact_url(url),
        count_finished(study),
        budget,
        ran,
        best.number if best else None,
        best.value if best else None,
        paths.best if paths.best.exists() else None,
        stopped,
        tuple(n for n, _ in _front(study)) if len(study.directions) > 1 else None,
    )


def _claimed(study: optuna.Study, before: int | None = None) -> tuple[int, int]:
    """(finished, running) trials, read in one snapshot (two reads could miss a trial finishing in between).

    With ``before``, only running trials numbered below it count.
    """
    trials = study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING))
    finished = sum(1 for t in trials if t.state in FINISHED_STATES)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING and (before is None or t.number < before))
    return finished, running


def _budget_taken(study: optuna.Study, number: int, budget: int) -> bool:
    """True when finished trials plus running trials numbered before ``number`` already fill the budget."""
    return sum(_claimed(study, before=number)) >= budget


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _stuck_message(study: optuna.Study, url: str, running: int) -> str:
    numbers = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    return (
        f"study {study.study_name!r} in {redact_url(url)}: {running} trial(s) {numbers[:10]} are marked running but "
        "no worker has finished or abandoned them for a long time (they have no heartbeat, for example from a run "
        "killed before heartbeats were enabled); if no other worker is running, mark them failed with "
        "`optuna` (study.tell(number, state=FAIL)) and rerun"
    )


def _constrained(study: optuna.Study) -> bool:
    return bool(study.user_attrs.get("constraints"))


def _is_best(study: optuna.Study, number: int) -> bool:
    best = _best(study)
    return best is not None and best.number == number


def _check_compatible(study: optuna.Study, experiment: Experiment, url: str) -> None:
    """Refuse to resume a study that optimises other metrics or directions, or under other constraints."""
    settings = experiment.study
    have = [d.name.lower() for d in study.directions]
    if have != list(settings.directions):
        shown = have[0] if len(have) == 1 else have
        wanted = settings.direction if len(settings.directions) == 1 else list(settings.directions)
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and is set to {shown}, but "
            f"{experiment.file} asks to {wanted}; use another study name (--study) or the same "
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
            f"{experiment.file} asks for {asked!r}; use another study name (--study) or "
            f"{'that metric' if len(metrics) == 1 else 'those objectives, in that order'}"
        )
    wanted_constraints = [c.text for c in settings.constraints]
    had: Any = attrs.get("constraints")
    if had is None and (not wanted_constraints or not study.get_trials(deepcopy=False)):
        study.set_user_attr("constraints", wanted_constraints)
    elif (had or []) != wanted_constraints:
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists with the constraints {had or []}, but "
            f"{experiment.file} asks for {wanted_constraints}; the feasibility of its earlier trials was decided "
            "by those, so use another study name (--study) or the same constraints"
        )


@dataclass(frozen=True)
class BestSummary:
    """The best trial of a study as the storage records it, and where its weights are."""

    study: str
    storage: str
    direction: str
    metric: str | None
    trial: int
    value: float
    params: dict[str, Any]
    metrics: dict[str, float]
    states: dict[str, int]
    weights_dir: Path | None
    weights_status: str
    worker: str | None = None  # "host:pid" that ran the best trial

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "direction": self.direction,
            "metric": self.metric,
            "trial": self.trial,
            "value": self.value,
            "params": self.params,
            "metrics": self.metrics,
            "trials_by_state": self.states,
            "weights_dir": str(self.weights_dir) if self.weights_dir else None,
            "weights_status": self.weights_status,
            "worker": self.worker,
        }


def describe_best(name: str, *, root: Path = Path("studies"), storage: str | None = None) -> BestSummary:
    """Read the best trial of study ``name`` from its storage and check ``best/`` against it.

    ``weights_status`` is ``ok`` when ``best/model.json`` names that trial, ``missing`` when there is no ``best/``
    here, or ``stale`` when it names another trial (its weights were written on another host sharing the storage).

    Raises:
        StudyError: no such study, no feasible completed trial yet, or a multi-objective study (see
            :func:`hpo.front.describe_front`).
    """
    study, paths, url = load_study(name, root, storage)
    return best_summary(study, paths, url)


def best_summary(study: optuna.Study, paths: StudyPaths, url: str) -> BestSummary:
    """The :class:`BestSummary` of an open single-objective study (see :func:`describe_best`).

    Raises:
        StudyError: no feasible completed trial yet, or a multi-objective study.
    """
    name = study.study_name
    if len(study.directions) > 1:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has {len(study.directions)} objectives: it has a Pareto front "
            "rather than one best trial; use hpo.front.describe_front (what `hpo best` shows)"
        )
    best = _best(study)
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    if best is None:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has no {'feasible ' if _constrained(study) else ''}completed "
            f"trial yet ({states or 'no trials'}); run `hpo run` until one completes"
            + (" that satisfies the study's constraints" if _constrained(study) else "")
        )
    status, folder = "missing", None
    if paths.best.exists():
        card = read_card(paths.best)
        folder = paths.best
        status = "ok" if card.get("trial") == best.number else "stale"
    return BestSummary(
        name,
        redact_url(url),
        study.direction.name.lower(),
        study.user_attrs.get("metric"),
        best.number,
        float(best.value) if best.value is not None else float("nan"),
        dict(best.user_attrs.get("params", best.params)),
        dict(best.user_attrs.get("metrics", {})),
        states,
        folder,
        status,
        best.user_attrs.get("worker"),
    )
