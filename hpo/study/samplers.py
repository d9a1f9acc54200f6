"""The sampler a study runs with: the configured Optuna sampler, with TPE's view of the history capped so that a
trial costs about the same at trial 10,000 as at trial 1,000."""

from __future__ import annotations

import bisect
import copy
import heapq
from collections.abc import Container, Sequence
from typing import Any, cast

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.samplers._tpe import _truncnorm
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo.config.algorithms import MIN_MAX_HISTORY, AlgorithmSettings
from hpo.config.algorithms import build_sampler as build_optuna_sampler

__all__ = [
    "BEST_KEPT",
    "DEFAULT_MAX_HISTORY",
    "HistoryWindowSampler",
    "TrialSeededSampler",
    "build_sampler",
    "vectorize_tpe_log_ndtr",
]

#: TPE's history by default: the 250 most recent trials and the 25 best ones. A study of up to 275 trials is sampled
#: exactly as by Optuna's TPE; a longer one costs per trial about what trial 275 costs (figure 3a of
#: docs/benchmarks.md: Optuna's part stays at about 35 ms at trial 10,000, where over the last 1000 trials it is
#: about 55 ms and over the whole history about 190 ms). Figure 7b found the smallest window (225) as good as the
#: whole history over 500-trial studies: the 25 best trials kept are the "good" group TPE would take from all.
DEFAULT_MAX_HISTORY = 250
#: The best complete trials TPE always sees, however old: its "good" group never holds more than 25 trials
#: (``default_gamma`` caps it there), so with these kept it is the group it would split off the whole history.
BEST_KEPT = 25


def build_sampler(settings: AlgorithmSettings, where: str = "study.sampler") -> optuna.samplers.BaseSampler:
    """The sampler described by ``settings``, as a study runs it.

    A ``tpe`` sampler sees at most ``max_history`` recent trials (default :data:`DEFAULT_MAX_HISTORY`; ``null``: the
    whole history) through :class:`HistoryWindowSampler`; every other sampler is Optuna's own. A sampler with a
    ``seed`` draws each trial's parameters from that seed and the trial's number (:class:`TrialSeededSampler`).

    Raises:
        ConfigError: the options are invalid for the Optuna class.
    """
    sampler = build_optuna_sampler(settings, where)
    if settings.name == "tpe":
        vectorize_tpe_log_ndtr()
        limit = settings.options.get("max_history", DEFAULT_MAX_HISTORY)
        if limit is not None:
            sampler = HistoryWindowSampler(sampler, limit)
    return sampler if settings.seed is None else TrialSeededSampler(sampler, settings.seed)


#: Optuna's own ``log(Phi(a))`` for TPE's truncated normals (kept for tests and for :func:`vectorize_tpe_log_ndtr`).
OPTUNA_LOG_NDTR = getattr(_truncnorm, "_log_ndtr", None)


def _log_ndtr(a: np.ndarray) -> np.ndarray:
    """``log(Phi(a))`` elementwise, in float64 (``torch.special.log_ndtr``: accurate over the whole line)."""
    import torch  # only where TPE runs: the light commands that load a study never import torch

    return torch.special.log_ndtr(torch.as_tensor(np.asarray(a, dtype=np.float64))).numpy()


def vectorize_tpe_log_ndtr() -> None:
    """Make Optuna's TPE compute ``log(Phi(a))`` as one vectorized call instead of one Python call per element.

    TPE evaluates the probability mass of every kernel of its Parzen estimators at every candidate, for each integer
    (or stepped) parameter; Optuna 5 does that with ``np.frompyfunc`` over a scalar function, which is about a fifth
    of a trial's cost at trial 10,000 (figure 3a of docs/benchmarks.md). The replacement agrees with Optuna's to
    within 1e-12 (closer to the exact value near ``a = 6``, where Optuna's float64 ``log(1 - tiny)`` rounds), so the
    proposals are the same. It is installed only over the function it was written against: a later Optuna that
    changes it keeps its own.
    """
    if OPTUNA_LOG_NDTR is not None and getattr(_truncnorm, "_log_ndtr_single", None) is not None:
        _truncnorm._log_ndtr = _log_ndtr


class _WrappedSampler(optuna.samplers.BaseSampler):
    """A sampler that hands every call on to ``sampler``; subclasses change the calls they are about."""

    def __init__(self, sampler: optuna.samplers.BaseSampler) -> None:
        self.sampler = sampler

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


class TrialSeededSampler(_WrappedSampler):
    """A seeded sampler whose random draws for a trial depend on the seed and the trial's number, not on which process
    asks for it or how many trials that process asked before.

    Optuna seeds a sampler once per process: workers started with the same search-space file (on several hosts, or
    the same command started twice on one machine) then draw the same random numbers and, from the same history,
    propose the same trials. Here the wrapped sampler's random states are seeded again from ``(seed, trial number)``
    before it samples a trial: each trial number is unique in a study, so workers propose different trials, and a
    study run again from the same file proposes the same ones (given the same history).

    Args:
        sampler: the sampler to wrap (its random states are Optuna's ``LazyRandomState``; a QMC sampler's scrambling
            seed, which must stay the same for the whole study, is left alone).
        seed: the seed from the search-space file.
    """

    def __init__(self, sampler: optuna.samplers.BaseSampler, seed: int) -> None:
        super().__init__(sampler)
        self.seed = seed
        self._seeded_for: int | None = None

    def _seed_for(self, trial: FrozenTrial) -> None:
        if trial.number == self._seeded_for:
            return  # the trial's later draws continue its own stream
        self._seeded_for = trial.number
        value = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
        for state in _random_states(self.sampler):
            state.rng.seed(value)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._seed_for(trial)
        return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        self._seed_for(trial)
        return super().sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._seed_for(trial)
        super().before_trial(study, trial)


def _random_states(sampler: optuna.samplers.BaseSampler) -> list[LazyRandomState]:
    """The random states of ``sampler`` and of the samplers it holds (TPE's and NSGA-II's random sampler for their
    first trials, QMC's for parameters outside its search space, hpo's wrappers' wrapped sampler)."""
    states: list[LazyRandomState] = []
    todo: list[Any] = [sampler]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for value in vars(current).values():
            if isinstance(value, LazyRandomState) and id(value) not in seen:
                seen.add(id(value))
                states.append(value)
            elif isinstance(value, optuna.samplers.BaseSampler):
                todo.append(value)
    return states


class HistoryWindowSampler(_WrappedSampler):
    """A sampler that proposes from the recent part of a long study's history only.

    Optuna's TPE fits its Parzen estimators on every earlier trial, so its cost per trial grows with the study.
    Wrapped in this class it sees the ``max_history`` most recent trials plus the :data:`BEST_KEPT` best complete
    feasible ones, whatever their age. With one objective the "good" group TPE splits off is then the one it would
    split off the whole history (the best 25 of at least 250 trials), and only its model of the other trials is
    fitted on recent ones; with several objectives only the recent trials are kept. A study with at most
    ``max_history + BEST_KEPT`` trials is sampled exactly as by the wrapped sampler.

    Args:
        sampler: the sampler to wrap (Optuna's :class:`~optuna.samplers.TPESampler`).
        max_history: how many of the most recent trials it sees, at least
            :data:`~hpo.config.algorithms.MIN_MAX_HISTORY` (225).

    Raises:
        ValueError: ``max_history`` is below 225.
    """

    def __init__(self, sampler: optuna.samplers.BaseSampler, max_history: int) -> None:
        if max_history < MIN_MAX_HISTORY:
            raise ValueError(f"max_history must be at least {MIN_MAX_HISTORY}, but got max_history={max_history}")
        super().__init__(sampler)
        self.max_history = max_history
        self._best: dict[int, _BestTrials] = {}  # per study id

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.sampler.sample_independent(self._view(study), trial, param_name, param_distribution)

    def _view(self, study: optuna.Study) -> Any:
        best = None
        if len(study.directions) == 1:
            best = self._best.setdefault(study._study_id, _BestTrials(study.direction == StudyDirection.MAXIMIZE))
        return _RecentHistory(study, self.max_history, best)


class _RecentHistory:
    """The study as the wrapped sampler sees it: the study itself, except that reading its trials returns the
    window. Optuna's samplers and search-space helpers read trials through ``Study._get_trials`` only.

    Every read of a trial's sampling is served from the one snapshot of all trials that Optuna takes per trial (its
    ``use_cache`` read, made when the trial starts), so that a trial costs one pass over the history, not one per
    read; the reads TPE makes without the cache (for its constant liar, the running trials of other workers) are
    therefore as fresh as the trial's start.
    """

    def __init__(self, study: optuna.Study, max_history: int, best: _BestTrials | None) -> None:
        self._study = study
        self._max_history = max_history
        self._best_trials = best

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        everything = self._study._get_trials(deepcopy=False, use_cache=True)
        if len(everything) <= self._max_history + BEST_KEPT:
            return self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        recent = everything[-self._max_history :]
        kept = recent
        if self._best_trials is not None:
            first = recent[0].number
            self._best_trials.offer(everything)
            kept = [t for t in self._best_trials.trials() if t.number < first] + recent
        if states is not None:
            kept = [t for t in kept if t.state in states]
        return copy.deepcopy(kept) if deepcopy else kept


class _BestTrials:
    """The :data:`BEST_KEPT` best complete feasible trials of a single-objective study, kept up to date as trials
    finish. Each call looks only at the trials it has not seen finish (the new ones, and those it saw running or
    waiting, however old), so that it costs the same at trial 10,000 as at trial 1000."""

    def __init__(self, maximize: bool) -> None:
        self._sign = 1.0 if maximize else -1.0
        self._heap: list[tuple[float, int, FrozenTrial]] = []  # the worst kept trial first
        self._kept: set[int] = set()
        self._seen = 0  # every trial numbered below this was looked at ...
        self._unfinished: set[int] = set()  # ... and these were not finished then

    def offer(self, trials: list[FrozenTrial]) -> None:
        """Look at what is new in ``trials``: every trial of the study, sorted by number (as Optuna returns them)."""
        waited_for = sorted(self._unfinished)
        for trial in trials[bisect.bisect_left(trials, self._seen, key=_number) :]:
            self._settle(trial)
        if trials:
            self._seen = max(self._seen, trials[-1].number + 1)
        for number in waited_for:
            index = bisect.bisect_left(trials, number, key=_number)
            if index < len(trials) and trials[index].number == number:
                self._unfinished.discard(number)
                self._settle(trials[index])

    def _settle(self, trial: FrozenTrial) -> None:
        if not trial.state.is_finished():
            self._unfinished.add(trial.number)
        if trial.state != TrialState.COMPLETE or trial.number in self._kept:
            return
        entry = (self._sign * cast(float, trial.value), -trial.number)  # on a tie the earlier trial is better
        if len(self._heap) == BEST_KEPT and entry <= self._heap[0][:2]:
            return
        if _infeasible(trial):
            return
        self._kept.add(trial.number)
        if len(self._heap) < BEST_KEPT:
            heapq.heappush(self._heap, (*entry, trial))
        else:
            dropped = heapq.heappushpop(self._heap, (*entry, trial))[2]
            self._kept.discard(dropped.number)

    def trials(self) -> list[FrozenTrial]:
        """The best trials kept, in number order."""
        return sorted((t for _, _, t in self._heap), key=_number)


def _number(trial: FrozenTrial) -> int:
    return trial.number


def _infeasible(trial: FrozenTrial) -> bool:
    return any(v > 0 for v in trial.constraints.values())
