"""Search-space files as YAML documents: read safely (size, encoding, no aliases, depth) and checked for shape."""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo.errors import ConfigError, key_path

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES_ENV", "as_mapping", "check_keys", "get_int", "read_yaml_file", "too_deep"]

#: Environment variable that, when set, caps the bytes read from any one file hpo reads whole (search-space files
#: here; ``model.json`` and ``front.json`` in :mod:`hpo.best.folder`).
MAX_FILE_BYTES_ENV = "HPO_MAX_FILE_BYTES"
#: Largest search-space file read when ``$HPO_MAX_FILE_BYTES`` is not set (a real one is a few kilobytes).
_MAX_FILE_BYTES = 1 << 20
#: Deepest nesting a search-space file may have (a real one needs five levels).
MAX_DEPTH = 20


def read_yaml_file(path: Path) -> Any:
    """The YAML document in the search-space file ``path``.

    Raises:
        ConfigError: the file is missing, a folder, not a regular file (a named pipe, a device such as /dev/zero),
            over 1 MiB (or ``$HPO_MAX_FILE_BYTES``), not UTF-8, not YAML, uses aliases, repeats a key in a mapping,
            or nests too deeply.
    """
    payload = _read_capped(path)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    return _load_yaml(text, path)


def _max_file_bytes() -> int:
    """``$HPO_MAX_FILE_BYTES`` when set, else 1 MiB."""
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not raw:
        return _MAX_FILE_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"${MAX_FILE_BYTES_ENV}: must be a whole number of bytes >= 1, got {raw!r}")
    return int(raw)


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_capped(path: Path) -> bytes:
    """The bytes of the regular file ``path``, read only up to the size limit.

    A named pipe or a device is refused before it is opened (reading one could block forever, or never end, as
    ``/dev/zero`` does); the file is then opened without blocking and checked again, so that it cannot be swapped
    for one in between.
    """
    limit = _max_file_bytes()
    try:
        _refuse_unless_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such search-space file; pass the path of a YAML file such as search_spaces/default.yaml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        _refuse_unless_regular(path, status.st_mode)
        try:
            payload = handle.read(limit + 1) if status.st_size <= limit else b""
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if status.st_size > limit or len(payload) > limit:
        allowed = "1 MiB" if limit == _MAX_FILE_BYTES else f"{limit} bytes"
        size = f"{status.st_size} bytes" if status.st_size > limit else f"over {limit} bytes"
        raise ConfigError(
            f"{path}: is {size}; a search-space file may be at most {allowed} (${MAX_FILE_BYTES_ENV} sets the limit)"
        )
    return payload


def _refuse_unless_regular(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: is a folder; pass the path of a YAML search-space file")
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"{path}: is {_file_kind(mode)}, not a regular file; hpo reads search spaces only from regular files, so "
            "save it as a YAML file and pass that"
        )


def too_deep(raw: object) -> bool:
    """True when ``raw`` nests deeper than :data:`MAX_DEPTH` levels."""
    return _depth(raw, MAX_DEPTH) > MAX_DEPTH - 1


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases, so that a small file cannot expand to a huge document, and
    keys repeated in a mapping, which YAML loaders otherwise resolve silently by keeping the last one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed in search-space files; "
                "write the value out"
            )
        return super().compose_node(parent, index)

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._refuse_repeated_keys(node)
        return self.construct_document(node)

    def _refuse_repeated_keys(self, root: yaml.Node) -> None:
        """Refuse the first key that a mapping of the document holds twice, naming its key path and both lines."""
        pending: list[tuple[yaml.Node, str]] = [(root, "")]
        while pending:
            node, where = pending.pop()
            if isinstance(node, yaml.SequenceNode):
                pending.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(node.value))))
                continue
            if not isinstance(node, yaml.MappingNode):
                continue
            seen: dict[Any, yaml.Mark] = {}
            children = []
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # a merged mapping (<<) may override keys; it is checked on its own
                key = self.construct_object(key_node)
                mark = key_node.start_mark
                at = key_path(where, key) if where else key_path("", key)[1:]  # a top-level key: no dot before it
                if key in seen:
                    first = seen[key]
                    lines = (
                        f"lines {first.line + 1} and {mark.line + 1}"
                        if first.line != mark.line
                        else f"line {mark.line + 1}, columns {first.column + 1} and {mark.column + 1}"
                    )
                    raise ConfigError(
                        f"{at}: the key is given twice ({lines}); YAML would silently keep only the last one, so "
                        "delete or rename one of them"
                    )
                seen[key] = mark
                children.append((value_node, at))
            pending.extend(reversed(children))


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
