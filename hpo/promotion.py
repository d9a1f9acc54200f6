"""Publish the best trial: its weights, ``model.json``, calibration and threshold in ``best/``, and the same files
as Optuna artifacts attached to the trial."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.study import StudyDirection

from hpo.artifacts import ARTIFACTS_ERROR_ATTR, artifacts_dir, attach_files
from hpo.config import Experiment
from hpo.data import PreparedData
from hpo.objective import TrainedModel
from hpo.paths import StudyPaths
from hpo.validation_report import build_validation_report
from hpo.weights import best_files, build_model_card, promote_best_files

__all__ = ["BestModelPublisher", "PreparedBest"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedBest:
    """The files of ``best/`` for one trial, built once so that ``best/`` and the trial's artifacts are identical."""

    trial_number: int
    files: dict[str, bytes]


def _beats_best(study: optuna.Study, value: float) -> bool:
    """Whether ``value`` is strictly better than the best completed trial so far (ties keep the earlier trial)."""
    try:
        best = study.best_value
    except ValueError:
        return True
    return value > best if study.direction == StudyDirection.MAXIMIZE else value < best


class BestModelPublisher:
    """Builds a completed trial's files while it still runs (when it beats the best so far) and attaches them to it
    as artifacts; after the trial, writes them to ``best/`` if the storage says it is the best trial.

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

    def build(self, trained: TrainedModel) -> PreparedBest:
        """``model.pt``, ``model.json`` (with temperature, threshold and calibration summary), ``calibration.json``
        and ``reliability.png`` for ``trained``."""
        report = build_validation_report(self.experiment, self.data, trained)
        card = {**build_model_card(self.experiment, self.data, trained), **report.card_entries()}
        files = {**best_files(trained.state_dict, card), **report.files(self.experiment.study.name)}
        return PreparedBest(trained.trial_number, files)

    def prepare(self, trial: optuna.Trial, trained: TrainedModel) -> None:
        """Objective hook: if ``trained`` beats the best trial so far, build its files and attach them to ``trial``."""
        if not _beats_best(trial.study, trained.value):
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

    def promote(self, trained: TrainedModel, is_best: Callable[[int], bool]) -> bool:
        """Write ``trained``'s files to ``best/`` if, once the lock is held, ``is_best`` says it is the best trial.

        Returns:
            True when ``best/`` now holds ``trained``.

        Raises:
            StudyError: ``best/`` cannot be written (it keeps its previous content).
        """
        prepared = self._prepared.pop(trained.trial_number, None)
        # Built here only when another worker's better trial was not yet complete when this one checked.
        return promote_best_files(
            self.paths, trained.trial_number, is_best, lambda: (prepared or self.build(trained)).files
        )
