"""Drive an Optuna study: create or resume it, run the remaining trial budget, promote the best weights."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.algorithms import build_pruner, build_sampler
from hpo.config import Experiment
from hpo.data import load_data
from hpo.errors import StudyError
from hpo.objective import Objective
from hpo.paths import StudyPaths
from hpo.promotion import BestModelPublisher
from hpo.storage import open_storage, redact_url, resolve_storage_url
from hpo.weights import read_card

__all__ = [
    "FINISHED_STATES",
    "BestSummary",
    "RunResult",
    "TrialReport",
    "count_finished",
    "describe_best",
    "load_study",
    "run_study",
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


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials`` (complete or pruned)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def load_study(name: str, root: Path, storage: str | None) -> tuple[optuna.Study, StudyPaths, str]:
    """Open an existing study for reading.

    Raises:
        StudyError: no such study in the storage (the message lists the ones there are).
    """
    paths = StudyPaths(root, name)
    url = resolve_storage_url(paths, storage)
    rdb = open_storage(url, create=False)
    try:
        study = optuna.load_study(study_name=name, storage=rdb)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=rdb)]
        raise StudyError(
            f"{redact_url(url)}: has no study named {name!r} (it has {names}); pass --study with one of those"
        ) from None
    return study, paths, url


def run_study(
    experiment: Experiment,
    *,
    root: Path = Path("studies"),
    storage: str | None = None,
    on_trial_end: Callable[[TrialReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Create or resume the study of ``experiment`` and run it until ``n_trials`` trials have finished.

    Everything that can be checked is checked before anything is written: the data is read first, then the storage
    is opened, then outputs appear under ``root/<study>/``.

    Args:
        experiment: a validated search-space file.
        root: the folder holding one folder per study.
        storage: a SQLAlchemy URL; default ``$HPO_STORAGE``, else ``sqlite:///<root>/<study>/study.db``.
        on_trial_end: called after every trial with a :class:`TrialReport`.
        should_stop: polled after every trial; True ends the run (the budget is left for the next run).

    Raises:
        DataError, StudyError: bad data, or a storage or study that cannot be used.
    """
    settings = experiment.study
    data = load_data(experiment.data)
    paths = StudyPaths(root, settings.name)
    url = resolve_storage_url(paths, storage)
    rdb = open_storage(url, create=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = build_sampler(settings.sampler)
    pruner = build_pruner(settings.pruner)
    study = optuna.create_study(
        study_name=settings.name,
        storage=rdb,
        sampler=sampler,
        pruner=pruner,
        direction=settings.direction,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    _check_compatible(study, experiment, url)
    paths.study_dir.mkdir(parents=True, exist_ok=True)
    finished = count_finished(study)
    remaining = None if settings.n_trials is None else settings.n_trials - finished
    if remaining is not None and remaining <= 0:
        best = _best(study)
        return RunResult(
            settings.name,
            redact_url(url),
            finished,
            settings.n_trials,
            0,
            best.number if best else None,
            best.value if best else None,
            paths.best if paths.best.exists() else None,
            False,
        )

    publisher = BestModelPublisher(experiment, data, paths)
    objective = Objective(experiment, data, paths, on_complete=publisher.prepare)
    ran = 0
    stopped = False
    started = time.monotonic()

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal ran, stopped, started
        ran += 1
        promoted = False
        if trial.state == TrialState.COMPLETE and objective.last_trained is not None:
            trained = objective.last_trained
            objective.last_trained = None
            if trained.trial_number == trial.number:
                promoted = publisher.promote(trained, lambda n: _is_best(study, n))
        done = count_finished(study)
        if settings.n_trials is not None and done >= settings.n_trials:
            study.stop()  # other workers on the same storage may have used up the budget
        if should_stop is not None and should_stop():
            stopped = True
            study.stop()
        if on_trial_end is not None:
            best = _best(study)
            reason = trial.user_attrs.get("pruned_reason")
            on_trial_end(
                TrialReport(
                    trial.number,
                    trial.state.name.lower(),
                    trial.value if trial.state == TrialState.COMPLETE else None,
                    reason,
                    time.monotonic() - started,
                    done,
                    settings.n_trials,
                    best.value if best else None,
                    best.number if best else None,
                    promoted,
                )
            )
        started = time.monotonic()

    study.optimize(
        objective,
        n_trials=remaining,
        timeout=settings.timeout,
        callbacks=[after_trial],
        gc_after_trial=False,
        show_progress_bar=False,
    )
    best = _best(study)
    return RunResult(
        settings.name,
        redact_url(url),
        count_finished(study),
        settings.n_trials,
        ran,
        best.number if best else None,
        best.value if best else None,
        paths.best if paths.best.exists() else None,
        stopped,
    )


def _is_best(study: optuna.Study, number: int) -> bool:
    best = _best(study)
    return best is not None and best.number == number


def _check_compatible(study: optuna.Study, experiment: Experiment, url: str) -> None:
    """Refuse to resume a study that optimises another metric or direction."""
    if study.direction.name.lower() != experiment.study.direction:
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and is set to "
            f"{study.direction.name.lower()}, but {experiment.file} asks to {experiment.study.direction}; "
            "use another study name (--study) or the same direction"
        )
    recorded: Any = study.user_attrs.get("metric")
    if recorded is None:
        study.set_user_attr("metric", experiment.study.metric)
    elif recorded != experiment.study.metric:
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and optimises {recorded!r}, but "
            f"{experiment.file} asks for {experiment.study.metric!r}; use another study name (--study) or that metric"
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
        }


def describe_best(name: str, *, root: Path = Path("studies"), storage: str | None = None) -> BestSummary:
    """Read the best trial of study ``name`` from its storage and check ``best/`` against it.

    ``weights_status`` is ``ok`` when ``best/model.json`` names that trial, ``missing`` when there is no ``best/``
    here, or ``stale`` when it names another trial (its weights were written on another host sharing the storage).

    Raises:
        StudyError: no such study, or no completed trial yet.
    """
    study, paths, url = load_study(name, root, storage)
    best = _best(study)
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    if best is None:
        raise StudyError(
            f"study {name!r} in {redact_url(url)} has no completed trial yet ({states or 'no trials'}); "
            "run `hpo run` until one completes"
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
    )
