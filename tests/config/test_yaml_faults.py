"""Search-space files that YAML would read "successfully" but wrongly: repeated keys, pipes, devices, huge files."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest
import yaml

from hpo.config.experiment import load_experiment
from hpo.errors import ConfigError
from tests.conftest import HPO, REPO, tiny_space

#: Each case: the text after a valid study section, the key path named, and the two lines named.
REPEATED = {
    "a parameter": (
        "params:\n  lr: {type: float, low: 0.001, high: 0.1}\n  hidden_size: 16\n  lr: 0.01\n",
        "params.lr",
        "lines 6 and 8",
    ),
    "a bound": (
        "params:\n  lr:\n    type: float\n    low: 0.001\n    high: 0.1\n    low: 0.05\n",
        "params.lr.low",
        "lines 8 and 10",
    ),
    "a whole section": (
        "params:\n  lr: 0.01\nstudy:\n  name: other\n  n_trials: 100\n",
        "study",
        "lines 1 and 7",
    ),
    "a flow mapping": (
        "params:\n  lr: {type: float, low: 0.001, low: 0.01, high: 0.1}\n",
        "params.lr.low",
        "line 6, columns 21 and 33",
    ),
    "inside a list": (
        "params:\n  lr: 0.01\n  optimizer:\n    choices: [adam, sgd]\n    condition: {lr: 0.01}\n"
        "  layers:\n    - {units: 8, units: 16}\n",
        "params.layers[0].units",
        "line 11, columns 8 and 18",
    ),
}
STUDY = "study:\n  name: dup\n  n_trials: 2\n  metric: val/auroc\n"


@pytest.mark.parametrize("case", list(REPEATED))
def test_a_key_given_twice_is_refused_with_its_path_and_both_lines(write_space, case: str) -> None:
    text, at, lines = REPEATED[case]
    path = write_space(STUDY + text)
    assert yaml.safe_load(path.read_text())  # plain YAML takes it, silently keeping the last value
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {at}: the key is given twice ({lines})"), message


def test_keys_that_only_look_alike_are_not_repeats(write_space) -> None:
    doc = tiny_space()
    doc["params"]["lr"] = {"type": "float", "low": 1e-3, "high": 3e-2}
    doc["params"]["optimizer"] = "adam"
    del doc["params"]["momentum"]
    text = yaml.safe_dump(doc, sort_keys=False) + "inference:\n  threshold: max_f1\n"
    experiment = load_experiment(write_space(text))  # same key names in different mappings are fine
    assert experiment.study.name == "tiny"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``hpo`` in a subprocess that cannot take more than 4 GiB of memory or 60 s (a hang or a runaway read fails
    the test instead of the machine)."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [*HPO, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60, preexec_fn=limit_memory
    )


def test_hpo_run_refuses_a_repeated_key_with_exit_2_and_writes_nothing(write_space, tmp_path: Path) -> None:
    path = write_space(STUDY + REPEATED["a whole section"][0])
    result = _run(["run", str(path)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "study: the key is given twice (lines 1 and 7)" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "studies").exists()


def test_hpo_run_refuses_a_named_pipe_and_a_device_without_reading_them(tmp_path: Path) -> None:
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)  # nobody ever writes to it: reading it would block forever
    for path, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        result = _run(["run", str(path)], tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"{path}: is {kind}, not a regular file" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_file_over_the_cap_is_refused_and_the_cap_is_configurable(
    write_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tiny_space()
    path = write_space(doc)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:  # a sparse 2 GiB file: nothing is written to disk
        handle.truncate(2 << 30)
    with pytest.raises(ConfigError, match=r"is 2147483648 bytes; a search-space file may be at most 1 MiB"):
        load_experiment(big)

    size = path.stat().st_size
    monkeypatch.setenv("HPO_MAX_FILE_BYTES", str(size - 1))
    with pytest.raises(ConfigError, match=rf"is {size} bytes; .* at most {size - 1} bytes \(\$HPO_MAX_FILE_BYTES"):
        load_experiment(path)
    monkeypatch.setenv("HPO_MAX_FILE_BYTES", str(size))
    assert load_experiment(path).study.name == "tiny"
    monkeypatch.setenv("HPO_MAX_FILE_BYTES", "64k")
    with pytest.raises(ConfigError, match=r"\$HPO_MAX_FILE_BYTES: must be a whole number of bytes >= 1, got '64k'"):
        load_experiment(path)
    monkeypatch.delenv("HPO_MAX_FILE_BYTES")
    result = _run(["run", str(path)], tmp_path, env={"HPO_MAX_FILE_BYTES": "10"})
    assert result.returncode == 2 and "may be at most 10 bytes" in result.stderr, result.stderr
