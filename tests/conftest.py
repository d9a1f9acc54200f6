"""Shared fixtures: tiny CPU configurations, files in tmp_path, and readers for the real outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HPO = [sys.executable, "-m", "hpo.cli"]


def tiny_space(**overrides: Any) -> dict[str, Any]:
    """A search space that trains in well under a second per trial."""
    doc: dict[str, Any] = {
        "study": {"name": "tiny", "n_trials": 3, "sampler": {"name": "tpe", "seed": 1}, "pruner": {"name": "none"}},
        "data": {"source": "breast_cancer", "split_seed": 42, "test_fraction": 0},
        "training": {"max_epochs": 3, "batch_size": 128},
        "params": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "n_layers": {"type": "int", "low": 1, "high": 2},
            "hidden_size": 16,
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "momentum": {"type": "float", "low": 0.5, "high": 0.9, "condition": {"optimizer": "sgd"}},
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(doc.get(section), dict):
            doc[section] = {**doc[section], **values}
        else:
            doc[section] = values
    return doc


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[..., Path]:
    """Write a search-space document (a dict or YAML text) to tmp_path and return its path."""

    def write(doc: dict[str, Any] | str, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write CSV text (or bytes) to tmp_path and return its path."""

    def write(content: str | bytes, name: str = "data.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


def run_hpo(
    args: list[str],
    cwd: Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``hpo`` command in a subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    return subprocess.run([*HPO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def read_tensorboard_run(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Any], list[str]]:
    """Scalars, hparams (session start) and declared metric names of one TensorBoard run, read by tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    hparams: dict[str, Any] = {}
    metrics: list[str] = []
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                hparams[key] = getattr(value, kind)
        if data.HasField("experiment"):
            metrics = [m.name.tag for m in data.experiment.metric_infos]
    return scalars, hparams, metrics


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root folder of a finished study ``tiny`` with completed and pruned trials, built once per session.

    Shared by the tests that only read a study (report, dashboard, TensorBoard, listing): do not change it.
    """
    from hpo.config.experiment import load_experiment
    from hpo.search.run import run_study

    folder = tmp_path_factory.mktemp("tiny_study")
    doc = tiny_space(
        study={"name": "tiny", "n_trials": 6, "pruner": {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 0}}
    )
    doc["params"]["lr"] = {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}  # slow learners get pruned
    space = folder / "tiny.yaml"
    space.write_text(yaml.safe_dump(doc), encoding="utf-8")  # sorted keys: this order gives 4 complete, 2 pruned
    run_study(load_experiment(space), root=folder / "studies")
    return folder / "studies"


def inference_space(**overrides: Any) -> dict[str, Any]:
    """A tiny search space (Adam, so the model is decent) with a threshold rule and temperature scaling."""
    doc = tiny_space(
        study={"name": "inf", "n_trials": 3},
        params={"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}, "hidden_size": 16, "n_layers": 1},
        inference={"threshold": "max_f1", "temperature_scaling": True},
    )
    doc.update(overrides)
    return doc


@pytest.fixture(scope="session")
def inference_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root (``studies/``) of one finished tiny study ``inf``, shared by the inference tests: do not modify it."""
    from hpo.config.experiment import parse_experiment
    from hpo.search.run import run_study

    root = tmp_path_factory.mktemp("inference") / "studies"
    run_study(parse_experiment(inference_space(), root.parent / "space.yaml"), root=root)
    return root


def pareto_space(**study: Any) -> dict[str, Any]:
    """A tiny two-objective search space: maximise AUROC, minimise the parameter count (0 to 2 hidden layers)."""
    doc = tiny_space(
        study={
            "name": "pareto",
            "n_trials": 8,
            "objectives": [
                {"metric": "val/auroc", "direction": "maximize"},
                {"metric": "model/params", "direction": "minimize"},
            ],
            "sampler": {"name": "tpe", "seed": 3, "n_startup_trials": 4},
            **study,
        },
        params={
            "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
            "n_layers": {"type": "int", "low": 0, "high": 2},
            "hidden_size": {"type": "categorical", "choices": [4, 8, 16, 32]},
            "optimizer": "adam",
        },
    )
    del doc["study"]["pruner"]  # multi-objective: no pruner
    del doc["params"]["momentum"]  # adam only
    return doc


@pytest.fixture(scope="session")
def pareto_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root (``studies/``) of one finished two-objective study ``pareto``, shared by the tests that only read it:
    do not modify it (copy it first)."""
    from hpo.config.experiment import parse_experiment
    from hpo.search.run import run_study

    root = tmp_path_factory.mktemp("pareto") / "studies"
    run_study(parse_experiment(pareto_space(), root.parent / "pareto.yaml"), root=root)
    return root
