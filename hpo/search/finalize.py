"""When a study has finished its budget: refit the best configuration, build the top-k ensemble, and score ``best/``
once on the held-out test split (what ``training.refit``, ``inference.ensemble`` and ``data.test_fraction`` ask
for). Everything here reads Optuna's values and writes ``best/``; nothing here writes to Optuna."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpo.best.folder import CARD_FILE, ENSEMBLE_DIR, MODEL_FILE, best_files, read_card, update_best
from hpo.data.loading import PreparedData
from hpo.evaluation.test_split import TestEvaluation, evaluate_best
from hpo.inference.threshold import choose_threshold
from hpo.paths import StudyPaths
from hpo.study.access import best_trial

if TYPE_CHECKING:
    from hpo.config.experiment import Experiment
    from hpo.search.promotion import BestModelPublisher
    from hpo.train.objective import Objective

__all__ = ["Finalization", "finalize_study", "member_folder"]


@dataclass(frozen=True)
class Finalization:
    """What :func:`finalize_study` did to ``best/``."""

    refitted_from: int | None = None  # the trial whose configuration was refitted
    ensemble: tuple[int, ...] = ()  # the trials averaged by best/ensemble
    test: TestEvaluation | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "refitted_from": self.refitted_from,
            "ensemble": list(self.ensemble),
            "test": self.test.card_entries() if self.test is not None else None,
        }


def member_folder(number: int) -> str:
    """``member_0007``: an ensemble member's folder under ``best/ensemble/``."""
    return f"member_{number:04d}"


def finalize_study(
    experiment: Experiment,
    data: PreparedData,
    study: optuna.Study,
    paths: StudyPaths,
    objective: Objective,
    publisher: BestModelPublisher,
) -> Finalization:
    """Refit, ensemble and test ``best/`` as the search-space file asks (single-objective studies only)."""
    best = best_trial(study)
    if experiment.study.multi_objective or best is None or not (paths.best / CARD_FILE).is_file():
        return Finalization()
    if read_card(paths.best).get("trial") != best.number:
        return Finalization()  # best/ is another host's or behind: leave it to the host that ran the best trial
    refitted = _refit(experiment, data, paths, objective, best) if experiment.training.refit else None
    members: tuple[int, ...] = ()
    if experiment.inference.ensemble_top_k:
        members = _ensemble(experiment, data, study, paths, objective, publisher, best.number)
    test = evaluate_best(paths, record=True) if data.test_rows else None
    return Finalization(refitted, members, test)


def _refit(
    experiment: Experiment, data: PreparedData, paths: StudyPaths, objective: Objective, best: optuna.trial.FrozenTrial
) -> int | None:
    params = dict(best.user_attrs.get("params") or {})
    epochs = int(best.user_attrs.get("best_epoch", experiment.training.max_epochs - 1)) + 1
    state = objective.refit(best.number, params, epochs)
    scaling = str(params.get("preprocessing.numeric", "standard"))
    card = read_card(paths.best)
    card.pop("weights", None)
    train_rows, _ = data.split("all")
    card["preprocessing"] = data.prepared(scaling, "all").preprocessor.to_json()
    card["data"] = {**card["data"], "n_train": len(train_rows), "n_validation": 0, "trained_on": "train+validation"}
    card["refit"] = {
        "from_trial": best.number,
        "epochs": epochs,
        "rows": len(train_rows),
        "calibration": "temperature and threshold were fitted on the validation split before the refit (fold 0's "
        "validation rows with cross-validation), by the model the search selected",
    }
    files = best_files(state, card)
    return (
        best.number
        if update_best(paths, best.number, files={MODEL_FILE: files[MODEL_FILE], CARD_FILE: files[CARD_FILE]})
        else None
    )


def _top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and all(v <= 0 for v in t.constraints.values())
    ]
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    return sorted(complete, key=lambda t: (sign * float(t.value), t.number))[:k]  # type: ignore[arg-type]


def _ensemble(
    experiment: Experiment,
    data: PreparedData,
    study: optuna.Study,
    paths: StudyPaths,
    objective: Objective,
    publisher: BestModelPublisher,
    best_number: int,
) -> tuple[int, ...]:
    k = experiment.inference.ensemble_top_k or 0
    top = _top_trials(study, k)
    if len(top) < 2:
        return ()
    folders: dict[str, dict[str, bytes]] = {}
    validation: list[np.ndarray] = []
    for trial in top:
        trained = objective.retrain(trial.number, dict(trial.user_attrs["params"]), float(trial.value or 0.0))
        files = publisher.build(trained).files
        folders[f"{ENSEMBLE_DIR}/{member_folder(trial.number)}"] = dict(files)
        validation.append(publisher.validation_probabilities(trained))
    mean = np.mean(validation, axis=0)
    choice = choose_threshold(mean, data.y_val.astype(np.float64), experiment.inference.threshold)
    best_card = read_card(paths.best)
    card = {
        "format": best_card["format"],
        "kind": "ensemble",
        "study": best_card["study"],
        "trial": best_number,
        "members": [member_folder(t.number) for t in top],
        "member_trials": [t.number for t in top],
        "member_values": [t.value for t in top],
        "combine": "mean of the members' probabilities",
        "metric": best_card["metric"],
        "features": best_card["features"],
        "target": best_card["target"],
        "labels": best_card["labels"],
        "threshold": choice.to_json(),
        "data": best_card["data"],
    }
    folders[ENSEMBLE_DIR] = {CARD_FILE: (json.dumps(card, indent=2, allow_nan=False) + "\n").encode()}
    written = update_best(
        paths,
        best_number,
        folders=folders,
        entries={"ensemble": {"folder": ENSEMBLE_DIR, "members": [t.number for t in top]}},
    )
    return tuple(t.number for t in top) if written else ()
