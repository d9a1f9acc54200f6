"""Search-space files as YAML documents: read safely (size, encoding, no aliases, depth) and checked for shape."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import ConfigError, key_path

__all__ = ["MAX_DEPTH", "as_mapping", "check_keys", "get_int", "read_yaml_file", "too_deep"]

_MAX_FILE_BYTES = 1 << 20
#: Deepest nesting a search-space file may have (a real one needs five levels).
MAX_DEPTH = 20


def read_yaml_file(path: Path) -> Any:
    """The YAML document in the search-space file ``path``.

    Raises:
        ConfigError: the file is missing, a folder, over 1 MiB, not UTF-8, not YAML, uses aliases, or nests too deeply.
    """
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise ConfigError(f"{path}: is {size} bytes; a search-space file may be at most 1 MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such search-space file; pass the path of a YAML file such as search_spaces/default.yaml"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; pass the path of a YAML search-space file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    return _load_yaml(text, path)


def too_deep(raw: object) -> bool:
    """True when ``raw`` nests deeper than :data:`MAX_DEPTH` levels."""
    return _depth(raw, MAX_DEPTH) > MAX_DEPTH - 1


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases, so that a small file cannot expand to a huge document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed in search-space files; "
                "write the value out"
            )
        return super().compose_node(parent, index)


def _load_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: is not valid YAML{where}: {problem}. Fix the syntax there.") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: is nested too deeply to be a search-space file") from None


def check_keys(raw: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    """Refuse a key of ``raw`` outside ``allowed``, suggesting the closest allowed key."""
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = key_path(where, key)
            raise ConfigError(f"{at}: unknown key{hint}; allowed keys are {sorted(allowed)}")


def as_mapping(raw: object, where: str) -> Mapping[str, Any]:
    """``raw`` as a mapping: an absent section (None) is empty, anything else but a mapping is refused."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping (key: value lines), got {type(raw).__name__} {raw!r}")
    return raw


def _depth(value: object, limit: int) -> int:
    """Nesting depth of ``value``, counted no further than ``limit``."""
    if limit <= 0:
        return 1
    if isinstance(value, Mapping):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def get_int(raw: Mapping[str, Any], key: str, default: int | None, where: str, low: int | None = None) -> int | None:
    """``raw[key]`` (or ``default``) as an integer of at least ``low``; None stays None."""
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{where}.{key}: must be >= {low}, got {value!r}")
    return value
