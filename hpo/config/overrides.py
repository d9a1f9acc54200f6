"""Command-line overrides of a search-space file (``hpo run SPACE training.max_epochs=5 params.lr.high=0.3``),
applied to the YAML document before it is validated, so that an override is checked like the key it replaces."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml

from hpo.errors import ConfigError

__all__ = ["apply_overrides", "is_override"]

#: The keys of a parameter's range (``params.lr.high``): what follows a parameter's (possibly dotted) name.
_SPEC_KEYS = {"type", "low", "high", "log", "step", "choices", "value", "condition"}


def is_override(text: str) -> bool:
    """Whether a command-line word is an override (``key.path=value``) rather than a file name."""
    key, sep, _ = text.partition("=")
    return bool(sep) and bool(key) and "/" not in key and not key.endswith((".yaml", ".yml"))


def _value(item: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"override {item!r}: the value {text!r} is not a YAML value ({str(exc).splitlines()[0]}); quote text, "
            "e.g. 'params.optimizer=adam' or \"params.lr={type: float, low: 0.001, high: 0.1, log: true}\""
        ) from None


def apply_overrides(raw: Any, overrides: Sequence[str]) -> Any:
    """A copy of the parsed search-space document ``raw`` with each ``key.path=value`` set.

    The value is read as YAML (``5``, ``0.3``, ``true``, ``adam``, ``[32, 64]``, ``{type: int, low: 1, high: 3}``).
    A key holding dots itself (``params.preprocessing.numeric=robust``) is matched whole when the document has it.
    Missing mappings on the way are created; unknown keys are then refused by validation like keys of the file.

    Raises:
        ConfigError: an override that is not ``key.path=value``, a value that is not YAML, or a path through a
            value that is not a mapping (naming the override).
    """
    doc: Any = copy.deepcopy(raw) if raw is not None else {}
    if not isinstance(doc, dict):
        return doc  # validation says the file is not a mapping
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or key.startswith(".") or key.endswith(".") or ".." in key:
            raise ConfigError(
                f"override {item!r}: must be key.path=value, such as training.max_epochs=5, study.n_trials=50 or "
                "params.lr.high=0.3"
            )
        parts = key.strip().split(".")
        if parts[0] == "params" and len(parts) > 2:
            # A parameter's name may hold dots (preprocessing.numeric): it runs up to the first key of a range.
            cut = next((k for k in range(2, len(parts)) if parts[k] in _SPEC_KEYS), len(parts))
            parts = [parts[0], ".".join(parts[1:cut]), *parts[cut:]]
        node: Any = doc
        i = 0
        while True:
            # The longest run of parts naming an existing key (a parameter such as preprocessing.numeric has a dot).
            j = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in node), i + 1)
            name = ".".join(parts[i:j])
            if j == len(parts):
                node[name] = _value(item, text)
                break
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {item!r}: {'.'.join(parts[:j])} is {child!r} in the file, not a mapping, so it has "
                    f"no key {parts[j]!r}; override {'.'.join(parts[:j])} itself (for example "
                    f"params.lr={{type: float, low: 0.001, high: 0.1, log: true}})"
                )
            node, i = child, j
    return doc
