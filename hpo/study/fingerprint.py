"""A study's experiment fingerprint: everything that defines what its trials mean (search space, data file and
columns, split, training, objectives), stored at creation and compared on every resume, so that one study never mixes
two experiments."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from hpo.errors import StudyError
from hpo.study.storage import redact_url

if TYPE_CHECKING:
    from hpo.config.experiment import Experiment

__all__ = ["FINGERPRINT_ATTR", "check_fingerprint", "experiment_fingerprint"]

#: The study's user attribute holding the fingerprint (``{"digest": ..., "settings": {key: value}}``).
FINGERPRINT_ATTR = "fingerprint"
#: Settings that change how a run goes but not what its trials mean: they may differ between runs.
_FREE = (
    "study.n_trials",
    "study.timeout",
    "study.heartbeat_interval",
    "study.grace_period",
    "study.enqueue",
    "training.population",
)


def _file_sha256(path: Path) -> str:
    from hpo.data.loading import file_sha256

    try:
        return file_sha256(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists, paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def experiment_fingerprint(experiment: Experiment) -> dict[str, Any]:
    """``{"digest": sha256, "settings": {key path: value}}`` of what defines the experiment's trials."""
    data = _plain(experiment.data)
    data["path"] = Path(data["path"]).name  # where the file lies may change; its content may not
    data["sha256"] = _file_sha256(experiment.data.path)
    study = experiment.study
    settings: dict[str, Any] = {}
    _flatten("params", {spec.name: _plain(spec) for spec in experiment.space.params}, settings)
    _flatten("data", data, settings)
    _flatten("training", _plain(experiment.training), settings)
    _flatten("inference", _plain(experiment.inference), settings)
    settings["study.objectives"] = [[o.metric, o.direction] for o in study.objectives]
    settings["study.constraints"] = [c.text for c in study.constraints]
    settings = {k: v for k, v in settings.items() if not k.startswith(_FREE)}
    canonical = json.dumps(settings, sort_keys=True, default=str)
    return {
        "digest": hashlib.sha256(canonical.encode()).hexdigest(),
        "settings": json.loads(canonical),
        "file": str(experiment.file),
        "overrides": list(experiment.overrides),  # how the settings were given (their effect is in settings)
    }


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def check_fingerprint(study: optuna.Study, experiment: Experiment, url: str) -> None:
    """Record the experiment's fingerprint on a study that has none; refuse a study whose trials came from another.

    Raises:
        StudyError: the study was created by a different experiment; the message lists each changed key (old ->
            new) and the two ways forward.
    """
    mine = experiment_fingerprint(experiment)
    recorded = study.user_attrs.get(FINGERPRINT_ATTR)
    if not isinstance(recorded, dict) or "settings" not in recorded:
        study.set_user_attr(FINGERPRINT_ATTR, mine)
        return
    if recorded.get("digest") == mine["digest"]:
        return
    old, new = recorded["settings"], mine["settings"]
    changed = [
        f"{key}: {_shown(old.get(key, '(absent)'))} -> {_shown(new.get(key, '(absent)'))}"
        for key in sorted({*old, *new})
        if old.get(key, "(absent)") != new.get(key, "(absent)")
    ]
    shown = "; ".join(changed[:12]) + (f"; and {len(changed) - 12} more" if len(changed) > 12 else "")
    raise StudyError(
        f"{redact_url(url)}: study {study.study_name!r} was created by another experiment ({experiment.file} "
        f"differs in {len(changed)} setting(s): {shown}), so its trials cannot be compared with new ones. Use another "
        f"study name (--study NEW), or start a new study from this one's best configurations: "
        f"hpo run {experiment.file} --study NEW --from {study.study_name}"
    )
