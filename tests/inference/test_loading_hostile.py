"""Weight files that are damaged or malicious are refused with a clear error, and nothing in them runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

import hpo
from hpo.best.folder import MAX_FILE_BYTES_ENV
from hpo.config.experiment import load_experiment
from hpo.errors import WeightsError
from hpo.search.run import run_study
from tests.conftest import run_hpo, tiny_space


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


# --- weights and inputs that are not files: pipes, devices, huge files ---------------------------------------------


def _predict(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``hpo predict`` in a subprocess with a timeout: reading a FIFO blocks forever and /dev/zero never ends, so a
    regression fails the test instead of hanging it or exhausting the machine."""
    return run_hpo(["predict", *args], cwd=cwd, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dev-zero-link", "fifo", "card-names-dev-zero"])
def test_weights_that_are_not_a_regular_file_are_refused_before_reading(
    best_dir: Path, tmp_path: Path, kind: str
) -> None:
    folder = _copy(best_dir, tmp_path)
    (folder / "model.pt").unlink()
    if kind == "dev-zero-link":
        (folder / "model.pt").symlink_to("/dev/zero")
        expected = f"error: {folder / 'model.pt'}: is a device (a symbolic link to /dev/zero), not a regular file"
    elif kind == "fifo":
        os.mkfifo(folder / "model.pt")
        expected = f"error: {folder / 'model.pt'}: is a named pipe (FIFO), not a regular file"
    else:
        card = json.loads((folder / "model.json").read_text())
        card["weights"]["file"] = "/dev/zero"
        (folder / "model.json").write_text(json.dumps(card))
        expected = f"error: {folder / 'model.json'}: its weights file '/dev/zero' is not a file name inside the folder"
    result = _predict(["--model", str(folder), str(tmp_path / "input.csv")], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(expected)
    assert "Traceback" not in result.stderr


def test_weights_over_the_cap_are_refused(best_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy(best_dir, tmp_path)
    limit = 2 * (folder / "model.json").stat().st_size  # model.json is read: only the weights are too big
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, str(limit))
    assert hpo.load_model(folder).card["trial"] == 0
    with (folder / "model.pt").open("ab") as handle:
        handle.write(bytes(limit))
    size = (folder / "model.pt").stat().st_size
    with pytest.raises(WeightsError) as info:
        hpo.load_model(folder)
    assert str(info.value).startswith(
        f"{folder / 'model.pt'}: is {size} bytes, more than the {limit} bytes hpo reads from a weights file "
        f"(${MAX_FILE_BYTES_ENV} sets the limit)"
    )


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        (5, "its weights file None is not a file name inside the folder"),
        ({"file": "../model.pt", "sha256": "0" * 64}, "its weights file '../model.pt' is not a file name inside"),
        ({"file": "model.pt", "sha256": 12}, "it records no valid sha256 of the weights"),
    ],
)
def test_a_card_with_a_damaged_weights_entry_is_refused(
    best_dir: Path, tmp_path: Path, weights: object, problem: str
) -> None:
    folder = _copy(best_dir, tmp_path)
    card = json.loads((folder / "model.json").read_text())
    card["weights"] = weights
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError) as info:
        hpo.load_model(folder)
    assert str(info.value).startswith(f"{folder / 'model.json'}: {problem}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_predict_refuses_an_input_that_is_not_a_regular_file(best_dir: Path, tmp_path: Path, kind: str) -> None:
    source = tmp_path / "input.csv"
    if kind == "fifo":
        os.mkfifo(source)
        expected = f"error: {source}: is a named pipe (FIFO), not a regular file; pass a CSV file"
    else:
        source.symlink_to("/dev/zero")
        expected = f"error: {source}: is a device (a symbolic link to /dev/zero), not a regular file; pass a CSV file"
    result = _predict(["--model", str(best_dir), str(source), "-o", str(tmp_path / "out.csv")], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv"]  # no output, no temporary file
