"""Run a study: the trial loop that spends the remaining budget, shared safely by any number of workers."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import FrozenTrial, TrialState

from hpo.best.folder import remove_leftovers
from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData, load_data
from hpo.errors import HpoError, StudyError
from hpo.paths import StudyPaths
from hpo.search.ask_lock import AskLock
from hpo.search.finalize import Finalization, finalize_study
from hpo.search.reconcile import best_is_stale, reconcile_best
from hpo.search.warm_start import WarmStart, enqueue_configurations
from hpo.study.access import (
    FINISHED_STATES,
    best_trial,
    count_finished,
    create_or_resume_study,
    load_study,
    note_told,
    pareto_front,
    trial_counts,
)
from hpo.study.fingerprint import check_fingerprint
from hpo.study.retry import storage_outage
from hpo.study.storage import fail_trials_without_heartbeat, redact_url, resolve_storage_url

if TYPE_CHECKING:
    from hpo.search.promotion import BestModelPublisher
    from hpo.train.objective import Objective

__all__ = [
    "RunResult",
    "TrialReport",
    "finalize_finished_study",
    "finished_study_result",
    "run_study",
    "start_warm",
    "study_ended",
    "study_result",
]


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
    finalization: Finalization | None = None  # refit, ensemble and test scores, when this run finished the study
    trials: tuple[TrialReport, ...] = ()  # the trials this run finished, in order
    warm_start: WarmStart | None = None  # the configurations this run queued first

    def to_json(self) -> dict[str, Any]:
        """The result as ``hpo run --json`` prints it."""
        payload: dict[str, Any] = {
            "study": self.study,
            "storage": self.storage,
            "finished": self.finished,
            "budget": self.budget,
            "ran": self.ran,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_dir": str(self.best_dir) if self.best_dir else None,
            "stopped_early": self.stopped_early,
        }
        if self.front is not None:
            payload["pareto_front"] = list(self.front)
        if self.finalization is not None:
            payload |= self.finalization.to_json()
        if self.warm_start is not None:
            payload["warm_start"] = self.warm_start.to_json()
        payload["trials"] = [
            {"number": t.number, "state": t.state, "value": t.value, "reason": t.reason} for t in self.trials
        ]
        return payload


def study_result(
    study: optuna.Study, paths: StudyPaths, url: str, budget: int | None, ran: int, stopped: bool
) -> RunResult:
    """The :class:`RunResult` of a study as its storage has it now."""
    best = best_trial(study)
    return RunResult(
        study=study.study_name,
        storage=redact_url(url),
        finished=count_finished(study),
        budget=budget,
        ran=ran,
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        best_dir=paths.best if paths.best.exists() else None,
        stopped_early=stopped,
        front=tuple(n for n, _ in pareto_front(study)) if len(study.directions) > 1 else None,
    )


def finished_study_result(
    experiment: Experiment, *, root: Path = Path("studies"), storage: str | None = None
) -> RunResult | None:
    """The result of a study that already has its ``n_trials`` finished trials (checked like any resumed study);
    None when it does not exist yet or has budget left.

    Raises:
        StudyError: the study exists but optimises something else.
    """
    budget = experiment.study.n_trials
    if budget is None:
        return None
    try:
        study, _, _ = load_study(experiment.study.name, root, storage)
    except StudyError:
        return None  # no such study (or storage) yet: the normal path creates it, or reports why it cannot
    if count_finished(study) < budget:
        return None
    if best_is_stale(study, StudyPaths(root, experiment.study.name)):
        return None  # best/ needs repairing: the full path does it
    study, paths, url = create_or_resume_study(experiment, root=root, storage=storage)
    check_fingerprint(study, experiment, url)
    remove_leftovers(paths)
    return study_result(study, paths, url, budget, 0, False)


_Run = TypeVar("_Run", bound=Callable[..., "RunResult"])


def _storage_failures_as_study_errors(run: _Run) -> _Run:
    """``run`` (given ``experiment``, ``root`` and ``storage`` as :func:`run_study` is), with a storage that cannot be
    written (disk full, a read-only database) raised as a :class:`StudyError` saying so, wherever it happens.

    Optuna raises ``StorageInternalError`` when a commit fails, and an ``AssertionError`` on top of it when that
    commit was the one recording a trial's end; the database rolls the commit back, so what it held is kept.
    Background threads meet the same failure (the trials' heartbeats, TensorBoard's writer, which also passes its
    error on to the run): their tracebacks are held back, and shown only if the run does not end with a message.
    """

    @functools.wraps(run)
    def wrapper(experiment: Experiment, *args: Any, **kwargs: Any) -> RunResult:
        import threading

        import sqlalchemy.exc

        write_errors = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, OSError)
        held: list[Any] = []
        previous = threading.excepthook

        def hold(failure: Any) -> None:
            if isinstance(failure.exc_value, write_errors):
                held.append(failure)
            else:
                previous(failure)

        threading.excepthook = hold
        # Optuna logs a failed trial with its traceback ("Trial 2 failed ..."): held back the same way
        held_logs: list[logging.LogRecord] = []

        def hold_log(record: logging.LogRecord) -> bool:
            if record.exc_info and isinstance(record.exc_info[1], write_errors):
                held_logs.append(record)
                return False
            return True

        optuna_logger = logging.getLogger("optuna")
        # on the handlers: a logger's own filters do not see what its children (optuna.study...) log
        handlers = list(optuna_logger.handlers)
        for handler in handlers:
            handler.addFilter(hold_log)
        try:
            return run(experiment, *args, **kwargs)
        except HpoError:
            held.clear()  # its message says what went wrong
            held_logs.clear()
            raise
        except (optuna.exceptions.StorageInternalError, AssertionError) as exc:
            chain: list[BaseException] = [exc]
            while chain[-1].__cause__ or chain[-1].__context__:
                chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
            if not any(isinstance(e, optuna.exceptions.StorageInternalError) for e in chain):
                raise
            held.clear()  # the message below says it all
            held_logs.clear()
            reason = next((str(e.orig) for e in chain if isinstance(e, sqlalchemy.exc.DBAPIError)), str(chain[-1]))
            paths = StudyPaths(Path(kwargs.get("root", Path("studies"))), experiment.study.name)
            url = redact_url(resolve_storage_url(paths, kwargs.get("storage")))
            raise StudyError(
                f"{url}: cannot write to the study's storage ({reason.splitlines()[0]}); the trials it recorded before "
                "are kept, and a trial cut short is marked failed and run again. Free disk space or make the "
                "database writable (for SQLite, its file and its folder), then rerun the same command"
            ) from None
        finally:
            threading.excepthook = previous
            for handler in handlers:
                handler.removeFilter(hold_log)
            for failure in held:
                previous(failure)
            for record in held_logs:
                for handler in handlers:
                    handler.handle(record)

    return wrapper  # type: ignore[return-value]


@_storage_failures_as_study_errors
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
    on_data: Callable[[PreparedData], None] | None = None,
    finalize: bool = True,
    warm_start: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_queued: Callable[[WarmStart | None], None] | None = None,
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
        on_data: called once with the checked data (its columns, rows left out), before the study is opened.
        warm_start: (where from, configurations) to queue as the first trials of a new study, with the file's
            ``study.enqueue`` (see :mod:`hpo.search.warm_start`); a resumed study queues nothing.
        on_note: called with one line when the run repaired something (a ``best/`` behind the storage).
        on_queued: called once, before the first trial, with what the warm start queued (None: nothing, the study
            had trials already).
        finalize: when this run finishes the budget, refit, build the ensemble and score the test split as the file
            asks (see :mod:`hpo.search.finalize`); workers of one ``--workers`` run leave that to their parent.

    Raises:
        DataError, StudyError: bad data, or a storage or study that cannot be used.
    """
    data = load_data(experiment.data)
    if on_data is not None:
        on_data(data)
    finished = finished_study_result(experiment, root=root, storage=storage)
    if finished is not None:
        return finished
    # Training is imported only now: a bad file, bad data or a finished study never loads torch or Lightning.
    import torch

    from hpo.search.promotion import BestModelPublisher
    from hpo.train.objective import Objective, training_device

    training_device(experiment.training.accelerator, f"{experiment.file}: training.accelerator")
    study, paths, url = create_or_resume_study(experiment, root=root, storage=storage, worker_index=worker_index)
    check_fingerprint(study, experiment, url)
    remove_leftovers(paths)  # temporary folders of a promotion killed mid-way
    warm = start_warm(study, experiment, warm_start, on_queued)
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    publisher = BestModelPublisher(experiment, data, paths)
    objective = Objective(experiment, data, paths, on_complete=publisher.prepare)
    repaired = reconcile_best(study, paths, publisher, objective)
    if repaired is not None and on_note is not None:
        on_note(repaired.describe())
    # Cross-validated trials train one at a time: a population trains every member on one split.
    population = 1 if data.folds else experiment.training.population
    loop = _TrialLoop(experiment, study, paths, url, objective, publisher, population)
    result = replace(loop.run(on_trial_end, should_stop, poll_seconds), warm_start=warm)
    if finalize and study_ended(study, result, loop.timed_out):
        result = replace(result, finalization=finalize_study(experiment, data, study, paths, objective, publisher))
    return result


def study_ended(study: optuna.Study, result: RunResult, timed_out: bool) -> bool:
    """Whether a run that just ended leaves the study done, so that it is refitted, ensembled and scored on the test
    split now: it finished the budget, or it ran until its timeout (not stopped by a signal) and no trial of the study
    is running any more (another worker still running one finalizes when it ends)."""
    if result.stopped_early:
        return False
    if result.budget is not None and result.finished >= result.budget:
        return True
    return timed_out and trial_counts(study).get(TrialState.RUNNING, 0) == 0


def start_warm(
    study: optuna.Study,
    experiment: Experiment,
    warm_start: tuple[str, Sequence[Mapping[str, Any]]] | None,
    on_queued: Callable[[WarmStart | None], None] | None = None,
) -> WarmStart | None:
    """Queue ``study.enqueue`` and the ``--from`` configurations into a study that has no trials yet, at most its
    ``n_trials`` (see :func:`~hpo.search.warm_start.enqueue_configurations`; ``on_queued`` hears what was queued before
    any trial runs)."""
    source, configurations = warm_start or ("", ())
    queued = [*experiment.study.enqueue, *configurations]
    label = " and ".join(
        s for s in (f"{experiment.file}: study.enqueue" if experiment.study.enqueue else "", source) if s
    )
    return enqueue_configurations(
        study, experiment.space, queued, label, budget=experiment.study.n_trials, on_queued=on_queued
    )


def finalize_finished_study(
    experiment: Experiment, data: PreparedData, *, root: Path = Path("studies"), storage: str | None = None
) -> Finalization:
    """:func:`~hpo.search.finalize.finalize_study` for a study whose trials other processes ran (``--workers``)."""
    from hpo.search.promotion import BestModelPublisher
    from hpo.train.objective import Objective

    study, paths, _ = create_or_resume_study(experiment, root=root, storage=storage)
    publisher = BestModelPublisher(experiment, data, paths)
    objective = Objective(experiment, data, paths, on_complete=publisher.prepare)
    return finalize_study(experiment, data, study, paths, objective, publisher)


_LOGGER = logging.getLogger(__name__)
#: Seconds between a worker's searches for dead workers' trials: a trial counts as dead only after grace_period (30 s by
#: default, at least 2), so searching before every trial (1 ms at trial 10,000) finds them no sooner to speak of.
_STALE_CHECK_SECONDS = 1.0


class _TrialLoop:
    """One worker's loop: claim a trial of the budget under the ask lock, run it, publish the best model, report."""

    def __init__(
        self,
        experiment: Experiment,
        study: optuna.Study,
        paths: StudyPaths,
        url: str,
        objective: Objective,
        publisher: BestModelPublisher,
        population: int = 1,
    ) -> None:
        self.settings = experiment.study
        self.study = study
        self.paths = paths
        self.url = url
        self.objective = objective
        self.publisher = publisher
        self.budget = self.settings.n_trials
        self.population = population
        self.ask_lock = AskLock(url, self.settings.name)
        self.database = _DatabaseWatch(url)
        self.ran = 0
        self.timed_out = False  # the run ended because study.timeout passed
        self.reports: list[TrialReport] = []
        self.started = time.monotonic()
        self.on_trial_end: Callable[[TrialReport], None] | None = None
        self._stale_checked: float | None = None

    def run(
        self,
        on_trial_end: Callable[[TrialReport], None] | None,
        should_stop: Callable[[], bool] | None,
        poll_seconds: float,
    ) -> RunResult:
        """Run trials until the budget is finished, the timeout passes or ``should_stop()`` says so."""
        self.on_trial_end = on_trial_end
        timeout = self.settings.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = False
        waiting_since: float | None = None
        while True:
            if should_stop is not None and should_stop():
                stopped = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.timed_out = True
                break
            if self.budget is not None:
                claim = self._claim()
                if claim == "done":
                    break
                if claim == "wait":
                    # Other workers hold the rest of the budget; wait in case one of them dies and its trial is retried.
                    waiting_since = waiting_since or time.monotonic()
                    if time.monotonic() - waiting_since > 2 * self.settings.grace_period + 60:
                        raise StudyError(self._stuck_message())
                    time.sleep(poll_seconds)
                    continue
            else:
                self._fail_stale_trials()  # no budget to claim under the lock (a timeout ends this study)
            waiting_since = None
            self.started = time.monotonic()
            try:
                if self.population > 1:
                    self._optimize_population()
                else:
                    self._optimize_one()
            finally:
                self.ask_lock.release()
        self.database.check(self.study, self.paths)
        result = study_result(self.study, self.paths, self.url, self.budget, self.ran, stopped)
        return replace(result, trials=tuple(self.reports))

    def _optimize_population(self) -> None:
        """Ask up to ``population`` trials (as many as the budget has left), train them together, tell each its own
        outcome, then publish and report them one by one, as :meth:`_optimize_one` does for a single trial."""
        study = self.study
        size = self.population
        if self.budget is not None:
            finished, running = _claimed(study)
            size = max(1, min(size, self.budget - finished - running))
        trials: list[optuna.Trial] = []
        try:
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize: this loop runs them itself (below).
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                for _ in range(size):
                    trials.append(study.ask())
        finally:
            self.ask_lock.release()  # the trials exist now: the next worker may count them and ask
        live: list[optuna.Trial] = []
        for trial in trials:
            if self._surplus(trial):
                self._after_trial(study, study.tell(trial, state=TrialState.FAIL))
            else:
                live.append(trial)
        if not live:
            return
        told: set[int] = set()
        frozen: list[FrozenTrial] = []
        try:
            with contextlib.ExitStack() as stack:
                for trial in live:
                    stack.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))  # type: ignore[arg-type]
                outcomes = self.objective.population(live)
            for trial in live:
                outcome = outcomes[trial.number]
                if isinstance(outcome, optuna.TrialPruned):
                    done = self._tell(trial, None, TrialState.PRUNED)
                else:
                    done = self._tell(trial, outcome, None)
                told.add(trial.number)
                if done is None:  # another worker failed it meanwhile
                    self._drop_taken_over(trial.number)
                else:
                    frozen.append(done)
        except OSError as exc:
            raise StudyError(self._unwritable(exc)) from None
        except Exception as exc:
            outage = storage_outage(exc)  # the storage stayed away for the whole retry time: say so, once
            if outage is None:
                raise
            raise outage from None
        finally:
            for trial in live:  # an interrupt or an error: the trials not told yet are failed (and retried later)
                if trial.number not in told:
                    with contextlib.suppress(Exception):  # a storage that is gone: their heartbeats go stale instead
                        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        # The members trained at once: each is reported with its share of the population's time.
        share = (time.monotonic() - self.started) / len(live)
        for done in frozen:
            self.started = time.monotonic() - share
            self._after_trial(study, done)

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Whether ``trial`` was asked after other workers had claimed the whole budget (without a lock spanning
        the workers two of them may both have seen budget left: the later trial gives way)."""
        budget = self.budget
        if budget is None or self.ask_lock.exclusive:
            return False
        # A lock that a database restart released while this worker held it excluded no one: its trial gives way
        # to any other (the worker that took the lock meanwhile does not know it has to).
        lost = self.ask_lock.lost
        if sum(_claimed(self.study, None if lost else trial.number)) < budget + lost:
            return False
        trial.set_user_attr("fail_reason", "surplus: other workers had already claimed the whole budget")
        return True

    def _unwritable(self, exc: OSError) -> str:
        return (
            f"{self.paths.study_dir}: cannot write the trial's outputs ({exc.strerror or exc}: {exc.filename}); "
            "the trial is marked failed and will be run again. Free disk space or make the folder writable, then "
            "rerun."
        )

    def _claim(self) -> str:
        """Take the ask lock if budget is left (``"go"``, lock held); else ``"done"`` or ``"wait"`` (lock released)."""
        assert self.budget is not None
        self.ask_lock.acquire()
        # Under the lock: failing a dead worker's trial and queueing its retry are two writes, and a worker that
        # counted the budget between them would start a fresh trial in the retry's place, stranding the retry.
        self._fail_stale_trials()
        finished, running = _claimed(self.study)
        if finished + running < self.budget:
            return "go"
        self.ask_lock.release()
        return "done" if finished >= self.budget else "wait"

    def _fail_stale_trials(self) -> None:
        """Fail the trials of workers that died (no heartbeat for ``grace_period``) and queue their retries (at most
        once per :data:`_STALE_CHECK_SECONDS`)."""
        now = time.monotonic()
        if self._stale_checked is not None and now - self._stale_checked < _STALE_CHECK_SECONDS:
            return
        self._stale_checked = now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        fail_trials_without_heartbeat(self.study, self.settings.grace_period)

    def _optimize_one(self) -> None:
        """Ask one trial, run it under a heartbeat and tell its outcome (Optuna's ``optimize`` loop for one trial,
        without its second stale-trial check, and with a trial another worker took over dropped, not raised).

        A disk that cannot be written becomes a StudyError (the trial is marked failed, and retried later)."""
        study = self.study
        try:
            try:
                with warnings.catch_warnings():
                    # Optuna warns that heartbeats are meant for Study.optimize: this loop runs them itself (below).
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    trial = study.ask()
            finally:
                self.ask_lock.release()  # the trial exists now: the next worker may count it and ask
            if self._surplus(trial):
                self._after_trial(study, study.tell(trial, state=TrialState.FAIL))
                return
            value: float | list[float] | None = None
            state: TrialState | None = None
            error: BaseException | None = None
            with get_heartbeat_thread(trial._trial_id, study._storage):  # type: ignore[arg-type]
                try:
                    value = self.objective(trial)
                except optuna.TrialPruned:
                    state = TrialState.PRUNED
                except (Exception, KeyboardInterrupt) as exc:  # told failed (retried later), then raised
                    state, error = TrialState.FAIL, exc
            done = self._tell(trial, value, state)
            if done is None:  # another worker failed it meanwhile; the error, if any, came from that
                self._drop_taken_over(trial.number)
                if isinstance(error, KeyboardInterrupt):
                    raise error
                return
            if error is not None:
                _LOGGER.warning("trial %d failed with parameters %s: %r", trial.number, trial.params, error)
                raise error
            self._after_trial(study, done)
        except OSError as exc:
            raise StudyError(self._unwritable(exc)) from None
        except Exception as exc:
            outage = storage_outage(exc)  # the storage stayed away for the whole retry time: say so, once
            if outage is None:
                raise
            raise outage from None

    def _tell(
        self, trial: optuna.Trial, value: float | list[float] | None, state: TrialState | None
    ) -> FrozenTrial | None:
        """Tell ``trial``'s outcome; ``None`` if another worker had already marked it failed.

        That worker found the trial's heartbeat stale (this process was paused or starved for longer than
        ``grace_period``: a laptop asleep, a stopped job, swapping) and queued a retry of it, which some worker
        runs; Optuna refuses to record a finished trial's outcome again."""
        try:
            done = self.study.tell(trial, value, state=state)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            if self.study._storage.get_trial(trial._trial_id).state != TrialState.FAIL:
                raise
            return None
        # Before anything reads the study again: what note_told infers holds only for a count read before the tell.
        note_told(self.study, done)
        return done

    def _drop_taken_over(self, number: int) -> None:
        _LOGGER.warning(
            "trial %d was marked failed by another worker while this one was still running it (no heartbeat for "
            "more than grace_period=%ds: was this process paused, asleep or starved of CPU?); its result is dropped "
            "and the retry queued for it runs its parameters again. Raise study.grace_period if this recurs",
            number,
            self.settings.grace_period,
        )
        self.publisher.discard(number)

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.database.check(study, self.paths)
        self.ran += 1
        complete = trial.state == TrialState.COMPLETE
        if complete:
            promoted = self.publisher.publish(study, trial.number)
        else:
            self.publisher.discard(trial.number)
            promoted = False
        report = self._report(trial, promoted)
        self.reports.append(report)
        if self.on_trial_end is not None:
            self.on_trial_end(report)
        self.started = time.monotonic()

    def _report(self, trial: FrozenTrial, promoted: bool) -> TrialReport:
        counts = trial_counts(self.study)  # one read for both the best trial and the progress
        best = best_trial(self.study, counts)
        complete = trial.state == TrialState.COMPLETE
        multi = self.settings.multi_objective
        return TrialReport(
            number=trial.number,
            state=trial.state.name.lower(),
            # A pruned trial's value is Optuna's: the last value it reported.
            value=trial.values[0] if complete else trial.value if trial.state == TrialState.PRUNED else None,
            reason=trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("fail_reason"),
            seconds=time.monotonic() - self.started,
            finished=count_finished(self.study, counts),
            budget=self.budget,
            best_value=best.value if best else None,
            best_trial=best.number if best else None,
            promoted=promoted,
            values=tuple(trial.values) if complete and multi else None,
            front=tuple(n for n, _ in pareto_front(self.study)) if multi else None,
            violated=tuple(c for c, v in trial.constraints.items() if v > 0) if complete else (),
        )

    def _stuck_message(self) -> str:
        numbers = [t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        return (
            f"study {self.study.study_name!r} in {redact_url(self.url)}: {len(numbers)} trial(s) {numbers[:10]} are "
            "marked running but no worker has finished or abandoned them for a long time (they have no heartbeat, "
            "for example from a run killed before heartbeats were enabled); if no other worker is running, mark them "
            "failed with `optuna` (study.tell(number, state=FAIL)) and rerun"
        )


def _claimed(study: optuna.Study, before: int | None = None) -> tuple[int, int]:
    """(finished, running) trials, counted in one query (two reads could miss a trial finishing in between).

    With ``before``, only running trials numbered below it count.
    """
    counts = trial_counts(study, running_before=before)
    return sum(counts.get(s, 0) for s in FINISHED_STATES), counts.get(TrialState.RUNNING, 0)


class _DatabaseWatch:
    """The SQLite file of a storage as it was when the run began, to notice it being deleted or replaced mid-run.

    SQLite keeps writing to a deleted file through the connection that holds it open, so every later trial would
    seem recorded (and the run end "successfully") while its records vanish when the process exits.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)  # it parses: the storage opened
        database = parsed.database if parsed.drivername.startswith("sqlite") else None
        self.file = Path(os.path.abspath(database)) if database and not database.startswith("file:") else None
        self.identity = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file now; None when there is none (or no file to watch)."""
        if self.file is None:
            return None
        try:
            status = os.stat(self.file)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def check(self, study: optuna.Study, paths: StudyPaths) -> None:
        """Raise unless the database file is still the one the run began with.

        Raises:
            StudyError: it was deleted or replaced; the message says what is lost and what remains.
        """
        if self.file is None or self.identity is None or self._identity() == self.identity:
            return
        import sqlalchemy.exc

        try:
            held = f"the {len(study.get_trials(deepcopy=False))} trials' records it held"
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError):  # it may not answer at all
            held = "the records of every trial it held"
        raise StudyError(
            f"{self.file}: the study database was deleted or replaced while hpo run was running; {held} (this run's "
            f"included) are lost with it; their TensorBoard runs remain in {paths.tensorboard_dir}. Restore the file "
            f"from a backup if there is one; otherwise move {paths.study_dir} aside and rerun to start the study afresh"
        )
