"""Publish the best trial: its weights, ``model.json``, calibration and threshold in ``best/``, and the same files
as Optuna artifacts attached to the trial."""

from __future__ import annotations

import datetime as dt
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection

from hpo.best.folder import best_files, promote_best_files, promote_front_files
from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData, file_sha256
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.search.validation_report import build_validation_report, validation_logits
from hpo.study.access import best_trial, pareto_front, recent_best_trial
from hpo.study.artifacts import ARTIFACTS_ERROR_ATTR, artifacts_dir, attach_files
from hpo.train.objective import TrainedModel

__all__ = ["BestModelPublisher", "PreparedBest", "build_model_card"]

_log = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("hpo", "torch", "pytorch-lightning", "optuna", "torchmetrics"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def build_model_card(experiment: Experiment, data: PreparedData, trained: TrainedModel) -> dict[str, Any]:
    """The content of ``model.json`` but its ``weights`` entry, which :func:`hpo.best.folder.best_files` adds."""
    return {
        "study": experiment.study.name,
        "trial": trained.trial_number,
        "value": trained.value,
        "metric": experiment.study.metric,
        "direction": experiment.study.direction,
        "params": trained.params,
        "metrics": trained.metrics,
        "best_epoch": trained.best_epoch,
        "model": {"class": f"{MLP.__module__}.{MLP.__qualname__}", "kwargs": trained.model_kwargs},
        "features": list(data.feature_names),
        "columns": data.describe_columns(),
        "preprocessing": data.prepared(trained.scaling).preprocessor.to_json(),
        "target": experiment.data.target,
        "labels": {"negative": data.labels[0], "positive": data.labels[1]},
        "data": {
            "source": data.source,
            "validation_fraction": experiment.data.validation_fraction,
            "split_seed": experiment.data.split_seed,
            "path": _absolute(data.path),
            "sha256": _data_sha256(data.path),
            "n_train": len(data.train_rows),
            "n_validation": len(data.val_rows),
            "n_test": len(data.test_rows),
            "n_dropped": len(data.dropped_rows),
            "n_per_class": data.class_counts(),
            "cv_folds": len(data.folds) or None,
            "validation_rows": list(data.val_rows),
            "test_rows": list(data.test_rows),
            "id_columns": list(experiment.data.id_columns),
        },
        "versions": _versions(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _absolute(path: str) -> str:
    """The data file's absolute path (``hpo evaluate`` reads it from any folder); "" for a built-in data set."""
    return str(Path(path).resolve()) if path else path


def _data_sha256(path: str) -> str | None:
    """The data file's sha256 (``hpo evaluate`` refuses another file); None for a built-in data set, or a file gone."""
    if not path:
        return None
    try:
        return file_sha256(path)
    except OSError:
        return None


@dataclass(frozen=True)
class PreparedBest:
    """The files of ``best/`` for one trial, built once so that ``best/`` and the trial's artifacts are identical."""

    trial_number: int
    files: dict[str, bytes]


def _better(study: optuna.Study, value: float, than: float) -> bool:
    return value > than if study.direction == StudyDirection.MAXIMIZE else value < than


def _compare_to_best(study: optuna.Study, value: float) -> int:
    """1 if ``value`` is strictly better than the best feasible completed trial this process knows of (or there is
    none), -1 if strictly worse, 0 for a tie (which keeps the earlier trial). The best known may be a few trials old
    (:func:`~hpo.study.access.recent_best_trial`): a trial completed since is better still, so -1 stays true, and
    a 1 is checked against the storage after the tell."""
    best = recent_best_trial(study)
    if best is None or best.value is None or _better(study, value, best.value):
        return 1
    return -1 if _better(study, best.value, value) else 0


def _dominated(study: optuna.Study, values: Sequence[float]) -> bool:
    """Whether a trial on the study's Pareto front (feasible, complete) dominates ``values``."""
    maximize = [d == StudyDirection.MAXIMIZE for d in study.directions]
    return any(_dominates(maximize, trial.values, values) for trial in study.best_trials)


def _dominates(maximize: Sequence[bool], theirs: Sequence[float], mine: Sequence[float]) -> bool:
    """Whether ``theirs`` is at least as good as ``mine`` in every objective and better in one."""
    pairs = [(t, m) if up else (-t, -m) for up, t, m in zip(maximize, theirs, mine, strict=True)]
    return all(t >= m for t, m in pairs) and any(t > m for t, m in pairs)


class BestModelPublisher:
    """Builds a completed trial's files while it still runs (when it beats the best so far) and attaches them to it
    as artifacts; after the trial (:meth:`publish`), writes them to ``best/`` if the storage says it is the best trial
    (with several objectives: that it is on the Pareto front).

    Args:
        experiment: the validated search-space file (its ``inference`` section chooses threshold and temperature).
        data: the prepared splits (the validation split is used).
        paths: the study's files.
    """

    def __init__(self, experiment: Experiment, data: PreparedData, paths: StudyPaths) -> None:
        self.experiment = experiment
        self.data = data
        self.paths = paths
        self._prepared: dict[int, PreparedBest] = {}
        self._trained: dict[int, TrainedModel] = {}
        self._outclassed: dict[int, int] = {}  # trial -> the sibling that beats it (see prepare)

    def build(self, trained: TrainedModel) -> PreparedBest:
        """``model.pt``, ``model.json`` (with temperature, threshold and calibration summary), ``calibration.json``
        and ``reliability.png`` for ``trained``."""
        report = build_validation_report(self.experiment, self.data, trained)
        card = {
            **build_model_card(self.experiment, self.data, trained),
            **report.card_entries(),
            **self._objective_entries(trained),
        }
        files = {**best_files(trained.state_dict, card), **report.files(self.experiment.study.name)}
        return PreparedBest(trained.trial_number, files)

    def validation_probabilities(self, trained: TrainedModel) -> np.ndarray:
        """``trained``'s probabilities on the validation rows, after its own temperature (as its ``best/`` would
        predict them)."""
        report = build_validation_report(self.experiment, self.data, trained)
        logits = validation_logits(trained, self.data).astype(np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-logits / report.temperature_value)))

    def _objective_entries(self, trained: TrainedModel) -> dict[str, Any]:
        """``model.json`` entries of multi-objective and constrained studies (none for a plain study)."""
        study = self.experiment.study
        entries: dict[str, Any] = {}
        if study.multi_objective:
            entries["objectives"] = [
                {"metric": o.metric, "direction": o.direction, "value": v}
                for o, v in zip(study.objectives, trained.values, strict=True)
            ]
        if study.constraints:
            entries["constraints"] = dict(trained.constraints)
            entries["feasible"] = trained.feasible
        return entries

    def prepare(self, trial: optuna.Trial, trained: TrainedModel, siblings: Sequence[TrainedModel] = ()) -> None:
        """Objective hook: if ``trained`` is feasible and beats the best trial so far (in a multi-objective study: no
        trial on the Pareto front dominates it), build its files and attach them to ``trial``.

        ``siblings``: the other completed members of its population, told right after it. One that is feasible and
        beats ``trained`` (dominates it) will be a completed trial better than ``trained``, so ``trained`` is not
        built; :meth:`publish` then drops it without asking the storage, unless that sibling was discarded (another
        worker failed it meanwhile), in which case ``trained`` is checked and built like any other trial.

        The weights are kept until :meth:`publish` is called for that trial, unless a completed trial is better (then
        it can never be the best)."""
        self._trained[trained.trial_number] = trained
        if not trained.feasible:
            return
        rival = self._rival(trained, siblings)
        if rival is not None:
            self._outclassed[trained.trial_number] = rival
            return
        if self.experiment.study.multi_objective:
            if _dominated(trial.study, trained.values):
                return
        else:
            compared = _compare_to_best(trial.study, trained.value)
            if compared < 0:  # a completed trial is better: it can never be the best (publish need not ask)
                del self._trained[trained.trial_number]
            if compared <= 0:
                return
        prepared = self.build(trained)
        self._prepared[trained.trial_number] = prepared
        try:
            attach_files(trial, prepared.files, self.paths)
        except OSError as exc:
            # The artifacts are a copy for optuna-dashboard: without them the trial is still good and best/ can still
            # be written, so the reason is recorded on the trial (and logged) instead of failing it.
            reason = f"{artifacts_dir(self.paths)}: cannot be written ({exc.strerror or exc})"
            trial.set_user_attr(ARTIFACTS_ERROR_ATTR, reason)
            _log.warning("trial %d: its files were not attached as Optuna artifacts: %s", trial.number, reason)

    def publish(self, study: optuna.Study, trial_number: int) -> bool:
        """After trial ``trial_number`` completed and was told to the storage: bring ``best/`` in step with it.

        Returns:
            True when ``best/`` now holds the trial's model (False: not the best, infeasible, worse than a completed
            trial when it finished training, or not trained here).

        Raises:
            StudyError: ``best/`` cannot be written (it keeps its previous content).
        """
        trained = self._trained.pop(trial_number, None)
        if trained is None:
            return False
        if self._outclassed.pop(trial_number, None) is not None and not self.experiment.study.multi_objective:
            return False  # a sibling beat it and was told complete: never the best
        if self.experiment.study.multi_objective:
            return self.promote_front(trained, lambda: pareto_front(study))
        if not trained.feasible:
            return False
        return self.promote(trained, lambda number: _is_best(study, number))

    def discard(self, trial_number: int) -> None:
        """Forget a trial that did not complete (pruned or failed after training); the siblings it outclassed are
        checked against the storage again."""
        self._trained.pop(trial_number, None)
        self._prepared.pop(trial_number, None)
        self._outclassed.pop(trial_number, None)
        self._outclassed = {n: r for n, r in self._outclassed.items() if r != trial_number}

    def _rival(self, trained: TrainedModel, siblings: Sequence[TrainedModel]) -> int | None:
        """The number of a feasible sibling that beats ``trained`` (strictly; with several objectives: dominates it),
        the best such one; None if there is none."""
        rivals = [s for s in siblings if s.feasible]
        study = self.experiment.study
        if study.multi_objective:
            maximize = [d == "maximize" for d in study.directions]
            dominating = [s for s in rivals if _dominates(maximize, s.values, trained.values)]
            return dominating[0].trial_number if dominating else None
        sign = 1.0 if study.direction == "maximize" else -1.0
        better = [s for s in rivals if sign * s.value > sign * trained.value]
        return max(better, key=lambda s: sign * s.value).trial_number if better else None

    def promote(self, trained: TrainedModel, is_best: Callable[[int], bool]) -> bool:
        """Write ``trained``'s files to ``best/`` if, once the lock is held, ``is_best`` says it is the best trial.

        Returns:
            True when ``best/`` now holds ``trained``.

        Raises:
            StudyError: ``best/`` cannot be written (it keeps its previous content).
        """
        prepared = self._prepared.pop(trained.trial_number, None)
        if not is_best(trained.trial_number):
            return False  # not the best now, never the best (trials are not removed): no need to take the lock
        # Built here only when another worker's better trial was not yet complete when this one checked.
        return promote_best_files(
            self.paths, trained.trial_number, is_best, lambda: (prepared or self.build(trained)).files
        )

    def promote_front(self, trained: TrainedModel, front: Callable[[], Sequence[tuple[int, Sequence[float]]]]) -> bool:
        """Multi-objective studies: bring ``best/`` in step with the Pareto front that ``front()`` reads under the
        lock, writing ``trained``'s folder if it is on it (see :func:`hpo.best.folder.promote_front_files`).

        Returns:
            True when ``best/`` now holds a folder for ``trained``.

        Raises:
            StudyError: ``best/`` cannot be written (it keeps its previous content).
        """
        prepared = self._prepared.pop(trained.trial_number, None)
        study = self.experiment.study
        return promote_front_files(
            self.paths,
            trained.trial_number,
            front,
            lambda: (prepared or self.build(trained)).files,
            study.objectives,
            [c.text for c in study.constraints],
        )


def _is_best(study: optuna.Study, number: int) -> bool:
    best = best_trial(study)
    return best is not None and best.number == number
