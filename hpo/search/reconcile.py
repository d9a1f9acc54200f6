"""Bring ``best/`` in step with the storage when a run starts: after a kill between Optuna's tell and the promotion,
or a ``best/`` that could not be written for a moment, ``best/`` may hold an older trial than the storage's best.
The best trial's files are taken back from the artifact store, or its configuration is trained again with its seed."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from hpo.best.folder import CARD_FILE, promote_best_files, read_card
from hpo.paths import StudyPaths
from hpo.study.access import best_trial
from hpo.study.artifacts import read_attached_files

if TYPE_CHECKING:
    from hpo.search.promotion import BestModelPublisher
    from hpo.train.objective import Objective

__all__ = ["Reconciliation", "best_is_stale", "reconcile_best"]


@dataclass(frozen=True)
class Reconciliation:
    """``best/`` was replaced: it held ``previous`` (None: nothing), it now holds ``trial``, restored ``how``."""

    previous: int | None
    trial: int
    how: str  # "artifacts" or "retrained"

    def describe(self) -> str:
        held = "nothing" if self.previous is None else f"trial {self.previous}"
        source = (
            "its files in artifacts/" if self.how == "artifacts" else "training its configuration again (same seed)"
        )
        return (
            f"best/ held {held}, not the storage's best trial {self.trial}; restored trial {self.trial} from {source}"
        )


def _ran_here(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether hpo ran ``trial`` on this host (a trial without hpo's ``worker`` attribute was added some other way:
    its weights were never hpo's to keep)."""
    worker = trial.user_attrs.get("worker")
    return isinstance(worker, str) and worker.rsplit(":", 1)[0] == socket.gethostname()


def best_is_stale(study: optuna.Study, paths: StudyPaths) -> bool:
    """Whether this host's ``best/`` should hold the single-objective storage's best trial and does not."""
    if len(study.directions) > 1:
        return False
    best = best_trial(study)
    if best is None or not _ran_here(best):
        return False
    if not (paths.best / CARD_FILE).is_file():
        return True
    return read_card(paths.best).get("trial") != best.number


def reconcile_best(
    study: optuna.Study, paths: StudyPaths, publisher: BestModelPublisher, objective: Objective
) -> Reconciliation | None:
    """Make ``best/`` hold the storage's best trial when it ran on this host (see the module docstring).

    Raises:
        StudyError: ``best/`` cannot be written.
    """
    if not best_is_stale(study, paths):
        return None
    best = best_trial(study)
    assert best is not None
    previous = int(read_card(paths.best)["trial"]) if (paths.best / CARD_FILE).is_file() else None
    files = read_attached_files(best, paths)
    how = "artifacts"
    if files is None or CARD_FILE not in files:
        params = dict(best.user_attrs.get("params") or best.params)
        trained = objective.retrain(best.number, params, float(best.value or 0.0))
        files = dict(publisher.build(trained).files)
        how = "retrained"

    def still_best(number: int) -> bool:
        now = best_trial(study)
        return now is not None and now.number == number

    if not promote_best_files(paths, best.number, still_best, lambda: files):
        return None
    return Reconciliation(previous, best.number, how)
