"""Weight files that are damaged or malicious are refused with a clear error, and nothing in them runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import hpo
from hpo.config.experiment import load_experiment
from hpo.errors import WeightsError
from hpo.search.run import run_study
from tests.conftest import tiny_space


class _Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def best_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "studies"
    space = root.parent / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space(study={"n_trials": 1})))
    run_study(load_experiment(space), root=root)
    return root / "tiny" / "best"


def _copy(best_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "best"
    shutil.copytree(best_dir, folder)
    return folder


def _reseal(folder: Path) -> None:
    """Make model.json's sha256 match model.pt, as an attacker who controls both files would."""
    card = json.loads((folder / "model.json").read_text())
    card["weights"]["sha256"] = hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(card))


def test_pickle_that_runs_a_command_is_refused_and_does_not_run(best_dir: Path, tmp_path: Path) -> None:
    folder = _copy(best_dir, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(folder / "model.pt")
    state["net.0.weight"] = _Exploit(marker)  # type: ignore[assignment]
    torch.save(state, folder / "model.pt")
    _reseal(folder)
    with pytest.raises(WeightsError, match="not a loadable state_dict"):
        hpo.load_model(folder)
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the plain recipe (weights_only=True) refuses it too
        torch.load(folder / "model.pt")
    assert not marker.exists()


def test_truncated_file(best_dir: Path, tmp_path: Path) -> None:
    folder = _copy(best_dir, tmp_path)
    payload = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(payload[:100])
    with pytest.raises(WeightsError, match="sha256"):
        hpo.load_model(folder)
    _reseal(folder)
    with pytest.raises(WeightsError, match="not a loadable state_dict"):
        hpo.load_model(folder)


def test_sha256_mismatch(best_dir: Path, tmp_path: Path) -> None:
    folder = _copy(best_dir, tmp_path)
    state = torch.load(folder / "model.pt")
    state["net.0.bias"] = state["net.0.bias"] + 1
    torch.save(state, folder / "model.pt")
    with pytest.raises(WeightsError, match=r"does not match .* recorded in"):
        hpo.load_model(folder)


@pytest.mark.parametrize(
    ("change", "key"),
    [("drop", "net.0.weight"), ("shape", "net.0.weight"), ("extra", "net.99.weight")],
)
def test_state_dict_not_matching_the_architecture_names_the_first_key(
    best_dir: Path, tmp_path: Path, change: str, key: str
) -> None:
    folder = _copy(best_dir, tmp_path)
    state = torch.load(folder / "model.pt")
    if change == "drop":
        del state[key]
    elif change == "shape":
        state[key] = torch.zeros(3, 3)
    else:
        state[key] = torch.zeros(1)
    torch.save(state, folder / "model.pt")
    _reseal(folder)
    with pytest.raises(WeightsError) as info:
        hpo.load_model(folder)
    assert "does not match the architecture" in str(info.value) and repr(key) in str(info.value)
