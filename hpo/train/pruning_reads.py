"""What a population's pruner reads each epoch: the study, read once for all P members instead of once per member.

``Trial.should_prune`` hands the pruner the study, and Optuna's caching storage re-reads every running trial (with
all its intermediate values) on each read of it: P members asking one by one would cost P x P trial reads per epoch.
:func:`pruner_reads` gives the population one view per epoch instead:

- percentile and median pruners read only the study's complete trials (and the member, as Optuna passes it:
  its own frozen trial with the values it reported). :class:`CompleteTrials` keeps those up to date from one
  query on hpo's (study, state) index (:func:`hpo.study.storage.index_trial_states`) and loads only the trials
  that completed since the last epoch; a complete trial never changes.
- every other pruner (successive halving and Hyperband compare running trials' rungs) gets
  :class:`StudySnapshot`: every trial of the study, read once per epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container
from typing import Any, Protocol

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

__all__ = ["CompleteTrials", "PrunerView", "StudySnapshot", "pruner_reads"]


class PrunerView(Protocol):
    """The study as one epoch's pruning decisions see it."""

    def prune(self, trial: optuna.Trial) -> bool: ...


def pruner_reads(study: optuna.Study) -> Callable[[], PrunerView]:
    """A function giving, at each call (each epoch), the view of ``study`` its pruner decides on."""
    backend = getattr(study._storage, "_backend", None)  # Optuna wraps an RDBStorage in a cache
    if isinstance(study.pruner, optuna.pruners.PercentilePruner) and isinstance(backend, optuna.storages.RDBStorage):
        complete = CompleteTrials(study, backend)
        return complete.view
    return lambda: StudySnapshot(study)


class StudySnapshot:
    """A study as a pruner reads it during one epoch: its trials read once, everything else (storage, directions,
    pruner) the study's own. A pruner that writes (successive halving records its rungs) writes to the storage as
    usual."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._trials = study.get_trials(deepcopy=False)
        self._by_number = {t.number: t for t in self._trials}

    def prune(self, trial: optuna.Trial) -> bool:
        return self._study.pruner.prune(self, self._by_number[trial.number])  # type: ignore[arg-type]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class CompleteTrials:
    """The complete trials of a study in an RDB storage, kept up to date at the cost of one index-only query when
    none completed since the last read (at trial 10,000 as at trial 10); newly complete trials are loaded one by
    one, and a complete trial is never read again."""

    def __init__(self, study: optuna.Study, backend: optuna.storages.RDBStorage) -> None:
        self._study = study
        self._backend = backend
        self._trials = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
        self._sorted: list[FrozenTrial] | None = None
        table = models.TrialModel
        self._query = sqlalchemy.select(table.trial_id).where(
            table.study_id == study._study_id, table.state == TrialState.COMPLETE
        )

    def read(self) -> list[FrozenTrial]:
        """The complete trials now, sorted by number (as Optuna returns them)."""

        def ids() -> set[int]:
            with self._backend.engine.connect() as connection:
                return set(connection.execute(self._query).scalars())

        retrying = getattr(self._backend, "retrying", None)  # hpo's storage retries a lost connection
        new = (retrying(ids) if retrying is not None else ids()) - self._trials.keys()
        for trial_id in new:
            self._trials[trial_id] = self._study._storage.get_trial(trial_id)
        if new or self._sorted is None:
            self._sorted = sorted(self._trials.values(), key=lambda t: t.number)
        return self._sorted

    def view(self) -> _CompleteView:
        return _CompleteView(self._study, self.read())


class _CompleteView:
    """The study as a percentile (or median) pruner reads it: its complete trials as of this epoch; a read of other
    trials goes to the study itself."""

    def __init__(self, study: optuna.Study, complete: list[FrozenTrial]) -> None:
        self._study = study
        self._complete = complete

    def prune(self, trial: optuna.Trial) -> bool:
        # What Trial.should_prune passes: the trial as this process knows it, with every value it reported.
        return self._study.pruner.prune(self, trial._get_latest_trial())  # type: ignore[arg-type]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if states is None or {s for s in TrialState if s in states} != {TrialState.COMPLETE}:
            return self._study.get_trials(deepcopy=deepcopy, states=states)
        return copy.deepcopy(self._complete) if deepcopy else list(self._complete)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
