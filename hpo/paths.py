"""Where a study's files live on disk: ``studies/<study>/``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import ConfigError

__all__ = ["StudyPaths", "validate_study_name"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_study_name(name: object, where: str) -> str:
    """Return ``name`` if it is a safe study name, else raise :class:`ConfigError`.

    A study name becomes a folder under ``studies/``, so it may only hold letters, digits, ``.``, ``_`` and ``-``,
    must start with a letter or digit and be at most 128 characters long.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where}: a study name may only contain letters, digits, '.', '_' and '-', start with a letter or "
            f"digit and be at most 128 characters long (it becomes a folder under studies/), got {name!r}. "
            "Choose a name such as 'breast-cancer-v2'."
        )
    return name


@dataclass(frozen=True)
class StudyPaths:
    """The files and folders of one study under a root folder (``studies/`` by default)."""

    root: Path
    name: str

    @property
    def study_dir(self) -> Path:
        """``studies/<study>/``."""
        return self.root / self.name

    @property
    def database(self) -> Path:
        """The default SQLite storage file."""
        return self.study_dir / "study.db"

    @property
    def default_storage_url(self) -> str:
        """SQLAlchemy URL of the default SQLite storage, as given to ``optuna-dashboard``."""
        return f"sqlite:///{self.database.as_posix()}"

    @property
    def tensorboard_dir(self) -> Path:
        """``tb/``: one TensorBoard run per trial."""
        return self.study_dir / "tb"

    @property
    def best(self) -> Path:
        """``best/``: the best trial's model (or one folder per Pareto-optimal trial); see :mod:`hpo.best.folder`."""
        return self.study_dir / "best"

    @property
    def lock_file(self) -> Path:
        """Lock held while ``best/`` is being replaced."""
        return self.study_dir / ".best.lock"

    def trial_version(self, number: int) -> str:
        """The TensorBoard ``version`` (run folder name) of a trial."""
        return f"trial_{number:04d}"
