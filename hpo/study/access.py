"""Open a study: create it in its storage or resume it, refusing one that optimises something else."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection

from hpo.config.algorithms import build_pruner, build_sampler
from hpo.config.experiment import Experiment, StudySettings
from hpo.errors import StudyError
from hpo.paths import StudyPaths
from hpo.study.storage import open_storage, redact_url, resolve_storage_url
from hpo.views import studies_list as overview

__all__ = ["load_study", "open_study"]


def load_study(name: str, root: Path, storage: str | None) -> tuple[optuna.Study, StudyPaths, str]:
    """Open an existing study for reading (:func:`hpo.views.studies_list.open_study`).

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


def _check_compatible(study: optuna.Study, experiment: Experiment, url: str) -> None:
    """Refuse to resume a study that optimises other metrics or directions, or under other constraints."""
    settings = experiment.study
    have = [d.name.lower() for d in study.directions]
    if have != list(settings.directions):
        shown = have[0] if len(have) == 1 else have
        wanted = settings.direction if len(settings.directions) == 1 else list(settings.directions)
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists and is set to {shown}, but "
            f"{experiment.file}: {_key(settings)} asks to {wanted}; use another study name (--study) or the same "
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
            f"{experiment.file}: {_key(settings)} asks for {asked!r}; use another study name (--study) or "
            f"{'that metric' if len(metrics) == 1 else 'those objectives, in that order'}"
        )
    wanted_constraints = [c.text for c in settings.constraints]
    had: Any = attrs.get("constraints")
    if had is None and (not wanted_constraints or not study.get_trials(deepcopy=False)):
        study.set_user_attr("constraints", wanted_constraints)
    elif (had or []) != wanted_constraints:
        raise StudyError(
            f"{redact_url(url)}: study {study.study_name!r} already exists with the constraints {had or []}, but "
            f"{experiment.file}: study.constraints asks for {wanted_constraints}; the feasibility of its earlier "
            "trials was decided by those, so use another study name (--study) or the same constraints"
        )


def _key(settings: StudySettings) -> str:
    """The key of the search-space file that says what the study optimises."""
    return "study.objectives" if settings.multi_objective else "study.metric"
