"""Drive an Optuna study: run the remaining trial budget and promote the best weights (opening: hpo.study.access)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from hpo.config.experiment import Experiment
from hpo.data.loading import load_data
from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.search.ask_lock import AskLock
from hpo.search.promotion import BestModelPublisher
from hpo.study.access import open_study
from hpo.study.storage import redact_url
from hpo.train.objective import Objective, training_device
from hpo.views.best_summary import best_trial

__all__ = [
    "FINISHED_STATES",
    "RunResult",
    "TrialReport",
    "count_finished",
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
    violated: tuple[str, ...] = ()  # the constraints this completed trial breaks (it is then never promoted)


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


def _front(study: optuna.Study) -> list[tuple[int, list[float]]]:
    """(number, values) of the feasible Pareto-optimal trials of a multi-objective study, as the storage has it."""
    return [(t.number, list(t.values)) for t in study.best_trials]


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
            best = best_trial(study)
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
                    tuple(c for c, v in trial.constraints.items() if v > 0) if complete else (),
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
            ask_lock.acquire()
            # Under the lock: failing a dead worker's trial and queueing its retry are two writes, and a worker that
            # counted the budget between them would start a fresh trial in the retry's place, stranding the retry.
            _fail_stale_trials(study)
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
    best = best_trial(study)
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


def _is_best(study: optuna.Study, number: int) -> bool:
    best = best_trial(study)
    return best is not None and best.number == number
