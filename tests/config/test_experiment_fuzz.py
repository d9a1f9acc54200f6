"""Property-based: whatever YAML comes in, loading ends in a valid experiment or our ConfigError, nothing else."""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.config.experiment import Experiment, load_experiment
from hpo.errors import ConfigError
from tests.conftest import REPO, tiny_space

REAL_FILES = sorted((REPO / "search_spaces").glob("*.yaml"))
SEEDS = [yaml.safe_load(p.read_text()) for p in REAL_FILES] + [tiny_space()]
KEYS = [
    "study",
    "data",
    "training",
    "params",
    "name",
    "metric",
    "direction",
    "n_trials",
    "timeout",
    "sampler",
    "pruner",
    "seed",
    "low",
    "high",
    "log",
    "step",
    "type",
    "choices",
    "condition",
    "value",
    "lr",
    "optimizer",
    "momentum",
    "batch_size",
    "source",
    "path",
    "target",
    "max_epochs",
    "percentile",
    "heartbeat_interval",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["tpe", "median", "float", "int", "categorical", "sgd", "val/auroc", ""]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), children, max_size=5),
    ),
    max_leaves=25,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A real search-space file with a few values replaced, keys dropped or keys added."""
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(documents)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(documents)
    return doc


def _load(tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "fuzz.yaml"
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    path.write_text(text, encoding="utf-8")
    try:
        assert isinstance(load_experiment(path), Experiment)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}:") and "\n" not in message.strip()


FUZZ = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@FUZZ
@given(doc=documents)
def test_random_documents(tmp_path: Path, doc: Any) -> None:
    _load(tmp_path, doc)


@FUZZ
@given(doc=mutated())
def test_mutated_real_files(tmp_path: Path, doc: Any) -> None:
    _load(tmp_path, doc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "text.yaml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(ConfigError):
        load_experiment(path)


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(9)
        ),
        "study: " + "[" * 100000 + "]" * 100000 + "\n",
        "study: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n",
    ],
    ids=["billion-laughs", "deep-lists", "deep-mappings"],
)
def test_yaml_bombs_are_refused_quickly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"aliases|nested too deeply|1 MiB"):
        load_experiment(path)
    assert time.monotonic() - started < 30  # generous: what matters is that it ends, not how fast
