"""The exceptions hpo raises for problems a user can fix."""

from __future__ import annotations

import re

__all__ = ["ConfigError", "DataError", "HpoError", "StudyError", "WeightsError", "key_path"]

_PLAIN_KEY = re.compile(r"^[\w/.-]{1,64}$")


def key_path(where: str, key: object) -> str:
    """``where.key``, quoting a key that is not plain text so that a message stays one readable line.

    ``where`` ending in ``:`` (a file name) gets a space instead of a dot.
    """
    text = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else repr(key)[:80]
    return f"{where} {text}" if where.endswith(":") else f"{where}.{text}"


class HpoError(Exception):
    """Base class of every error hpo raises for bad input or a bad state on disk.

    The CLI turns these into a one-paragraph message and exit code 2; anything else is a bug.
    """


class ConfigError(HpoError):
    """A search-space file (or a command-line override) is invalid."""


class DataError(HpoError):
    """A data file cannot be used to train a binary classifier."""


class StudyError(HpoError):
    """A study, its storage or its outputs cannot be used as asked."""


class WeightsError(HpoError):
    """A saved model (weights or their description) cannot be loaded."""
