"""Faults, round 2: workers die with their parent, a BOM header trains and predicts, a killed promotion's temporary
folders are cleaned, and a reader loading best/ during promotions always gets one consistent model."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from hpo.best.folder import best_files, best_lock, remove_leftovers, write_best_files
from hpo.cli import main
from hpo.errors import WeightsError
from hpo.inference.loading import load_model
from hpo.paths import StudyPaths
from tests.conftest import HPO, REPO, tiny_space
from tests.search.test_workers import _children, _wait_for


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    doc = tiny_space(study={"name": "orphans", "n_trials": 40}, training={"max_epochs": 200})
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    parent = subprocess.Popen(
        [*HPO, "run", "space.yaml", "--workers", "2"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for(lambda: len(_children(parent.pid)) == 2, process=parent)
    workers = _children(parent.pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
        time.sleep(0.2)
    assert alive == [], f"workers {alive} outlived their killed parent"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.slow
def test_a_csv_with_a_byte_order_mark_trains_and_predicts(tmp_path: Path) -> None:
    rows = "".join(f"{i},{(i * 7) % 5},{'ab'[i % 2]},{int(i % 3 == 0)}\n" for i in range(80))
    (tmp_path / "bom.csv").write_bytes("\ufeffa,b,c,y\n".encode() + rows.encode())
    doc = tiny_space(study={"name": "bom", "n_trials": 1}, data={"path": "bom.csv", "target": "y"})
    doc["data"].pop("source")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    root = ["--root", str(tmp_path / "studies")]
    result = CliRunner().invoke(main, ["run", str(tmp_path / "space.yaml"), *root])
    assert result.exit_code == 0, result.output
    out = str(tmp_path / "o.csv")
    scored = CliRunner().invoke(main, ["predict", "--study", "bom", *root, str(tmp_path / "bom.csv"), "-o", out])
    assert scored.exit_code == 0, scored.output
    import json

    card = json.loads((tmp_path / "studies" / "bom" / "best" / "model.json").read_text())
    assert card["features"] == ["a", "b", "c"]  # no BOM in the first column's name


def test_a_killed_promotion_leaves_nothing_for_good(tmp_path: Path) -> None:
    paths = StudyPaths(tmp_path, "s")
    (paths.study_dir / ".best-new-x1").mkdir(parents=True)
    (paths.study_dir / ".best-new-x1" / "model.pt").write_bytes(b"half")
    (paths.study_dir / ".best-old-x2").mkdir()
    (paths.study_dir / "keep").mkdir()
    assert sorted(remove_leftovers(paths)) == [".best-new-x1", ".best-old-x2"]
    assert sorted(p.name for p in paths.study_dir.iterdir()) == [".best.lock", "keep"]


def test_readers_never_see_a_torn_best_during_promotions(tmp_path: Path, inference_study: Path) -> None:
    # A real model folder to promote again and again, with weights that differ each time.
    source = inference_study / "inf" / "best"
    import json

    card = json.loads((source / "model.json").read_text())
    card.pop("weights")
    state = torch.load(source / "model.pt", weights_only=True)
    paths = StudyPaths(tmp_path, "torn")
    paths.study_dir.mkdir()
    versions = []
    for n in range(6):
        scaled = {k: v * (1 + n / 10) for k, v in state.items()}
        versions.append(best_files(scaled, {**card, "trial": n}))
    with best_lock(paths):
        write_best_files(paths, versions[0])
    stop = threading.Event()
    errors: list[str] = []
    loads = [0]
    rows = pd.DataFrame(np.zeros((2, len(card["features"]))), columns=card["features"])

    def reader() -> None:
        while not stop.is_set():
            try:
                model = load_model(paths.best, "cpu")
                model.predict_proba(rows)
                loads[0] += 1
            except WeightsError as exc:
                errors.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            with best_lock(paths):
                write_best_files(paths, versions[i % len(versions)])
    finally:
        stop.set()
        thread.join()
    assert errors == [] and loads[0] > 0
