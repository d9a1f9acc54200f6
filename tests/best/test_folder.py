from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

import hpo
from hpo.best.folder import best_files, best_lock, write_best_files
from hpo.config.experiment import load_experiment
from hpo.errors import DataError, WeightsError
from hpo.inference.loading import load_model
from hpo.paths import StudyPaths
from hpo.search.run import run_study
from tests.conftest import REPO, tiny_space


@pytest.fixture(scope="module")
def study_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights") / "studies"
    space = root.parent / "space.yaml"
    import yaml

    space.write_text(yaml.safe_dump(tiny_space(study={"n_trials": 2})))
    run_study(load_experiment(space), root=root)
    return root


def test_plain_pytorch_recipe_reproduces_the_recorded_metric_in_a_fresh_process(study_root: Path) -> None:
    best = study_root / "tiny" / "best"
    script = textwrap.dedent(f"""
        import json, numpy as np, pandas as pd, torch
        from sklearn.metrics import roc_auc_score
        from hpo.data.preprocessing import Preprocessor, read_csv_kwargs
        from hpo.model import MLP
        card = json.load(open({str(best / "model.json")!r}))
        model = MLP(**card["model"]["kwargs"])
        model.load_state_dict(torch.load({str(best / "model.pt")!r}))
        model.eval()
        frame = pd.read_csv({str(REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv")!r}, **read_csv_kwargs())
        rows = frame.iloc[card["data"]["validation_rows"]]
        x, _ = Preprocessor.from_json(card["preprocessing"], "model.json").transform(rows)
        with torch.no_grad():
            p = torch.sigmoid(model(torch.from_numpy(x))).numpy()
        y = (rows[card["target"]] == card["labels"]["positive"]).to_numpy()
        print(json.dumps({{"auroc": roc_auc_score(y, p), "recorded": card["value"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(result["auroc"] - result["recorded"]) <= 1e-6


def test_load_best_and_predict(study_root: Path) -> None:
    loaded = hpo.load_best("tiny", root=study_root)
    assert not loaded.model.training
    card = json.loads((study_root / "tiny" / "best" / "model.json").read_text())
    assert (
        hashlib.sha256((study_root / "tiny" / "best" / "model.pt").read_bytes()).hexdigest()
        == card["weights"]["sha256"]
    )
    probs = loaded.predict_proba(torch.zeros(3, 30).numpy() + 10.0)
    assert probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()
    with pytest.raises(DataError, match="expected rows of 30 features"):
        loaded.predict_proba([[1.0, 2.0]])
    with pytest.raises(WeightsError, match="no best weights yet"):
        hpo.load_best("nothing-here", root=study_root)


def _copy_best(study_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("model.pt", "model.json"):
        (folder / name).write_bytes((study_root / "tiny" / "best" / name).read_bytes())
    return folder


def test_damaged_weights_are_refused(study_root: Path, tmp_path: Path) -> None:
    folder = _copy_best(study_root, tmp_path)
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="does not match"):
        load_model(folder)
    card = json.loads((folder / "model.json").read_text())
    card["weights"]["sha256"] = hashlib.sha256(data[: len(data) // 2]).hexdigest()
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="not a loadable state_dict"):
        load_model(folder)


def test_architecture_mismatch_is_refused(study_root: Path, tmp_path: Path) -> None:
    folder = _copy_best(study_root, tmp_path)
    card = json.loads((folder / "model.json").read_text())
    card["model"]["kwargs"]["hidden_size"] += 1
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="does not match the architecture"):
        load_model(folder)


def test_replacing_best_never_shows_a_mixed_pair(tmp_path: Path) -> None:
    paths = StudyPaths(tmp_path, "s")
    paths.study_dir.mkdir()
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                card = json.loads((paths.best / "model.json").read_text())
                payload = (paths.best / "model.pt").read_bytes()
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if hashlib.sha256(payload).hexdigest() != card["weights"]["sha256"]:
                # the reader may straddle two swaps: re-read the card to see whether it changed under it
                again = json.loads((paths.best / "model.json").read_text())
                if again["trial"] == card["trial"]:
                    seen.append(f"torn pair at trial {card['trial']}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(60):
            with best_lock(paths):
                write_best_files(paths, best_files({"w": torch.full((200,), float(n))}, {"trial": n}))
    finally:
        stop.set()
        thread.join()
    assert seen == []
    assert json.loads((paths.best / "model.json").read_text())["trial"] == 59
    leftovers = [p.name for p in paths.study_dir.iterdir() if p.name.startswith(".best-")]
    assert leftovers == []
