"""``hpo predict`` and the inference lines of ``hpo best``: in-process through click, and end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from hpo.cli import main
from tests.conftest import REPO, run_hpo

DATASET = REPO / "hpo" / "data" / "datasets" / "breast_cancer.csv"


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _bad_csvs(folder: Path) -> dict[str, tuple[Path, str]]:
    frame = pd.read_csv(DATASET).head(20)
    cases = {
        "missing column": (frame.drop(columns="worst_area"), "missing feature column 'worst_area'"),
        "unknown --keep column": (frame, "--keep column 'comment' not in the file"),
        "text": (
            frame.astype({"mean_area": object}).assign(mean_area=lambda f: f.mean_area.where(f.index != 6, "?")),
            "numeric column 'mean_area' holds text at line 8",
        ),
    }
    paths = {}
    for name, (bad, message) in cases.items():
        path = folder / f"{name.replace(' ', '_').replace('-', '')}.csv"
        bad.to_csv(path, index=False)
        paths[name] = (path, message)
    return paths


def test_bad_input_exits_2_with_a_message_and_no_output(inference_study: Path, tmp_path: Path) -> None:
    for name, (path, message) in _bad_csvs(tmp_path).items():
        out = tmp_path / f"{path.stem}.out.csv"
        keep = ["--keep", "comment"] if "keep" in name else []
        result = _invoke(
            ["predict", "--study", "inf", "--root", str(inference_study), str(path), "-o", str(out), *keep]
        )
        assert result.exit_code == 2, name
        assert result.stderr.startswith(f"error: {path}: ") and message in result.stderr, result.stderr
        assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir()), name
    good = tmp_path / "good.csv"
    pd.read_csv(DATASET).head(3).to_csv(good, index=False)
    for args, message in [
        (["--study", "inf", "--model", str(inference_study / "inf" / "best")], "give one of them"),
        (["--study", "nothing"], "no best weights yet for study 'nothing'"),
        (["--model", str(tmp_path)], "model.json: not found"),
        (["--study", "../x"], "a study name may only contain"),
        (["--study", "inf", "--device", "banana"], "device 'banana': cannot be used here"),
    ]:
        result = _invoke(["predict", "--root", str(inference_study), *args, str(good)])
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "good.predictions.csv").exists()


def test_predict_json_summary(inference_study: Path, tmp_path: Path) -> None:
    source = tmp_path / "some.csv"
    pd.read_csv(DATASET).head(10).to_csv(source, index=False)
    result = _invoke(["predict", "--model", str(inference_study / "inf" / "best"), str(source), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 10 and summary["output"] == str(tmp_path / "some.predictions.csv")
    assert summary["labels"] == {"negative": "benign", "positive": "malignant"}


@pytest.mark.slow
def test_hpo_predict_matches_the_recorded_auroc_and_a_fresh_load_best(inference_study: Path, tmp_path: Path) -> None:
    card = json.loads((inference_study / "inf" / "best" / "model.json").read_text())
    validation = tmp_path / "validation.csv"
    pd.read_csv(DATASET).iloc[card["data"]["validation_rows"]].to_csv(validation, index=False)
    root = ["--root", str(inference_study)]
    result = run_hpo(["predict", "--study", "inf", *root, "validation.csv", "-o", "scored.csv"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Wrote {len(card['data']['validation_rows'])} predictions to scored.csv" in result.stdout
    scored = pd.read_csv(tmp_path / "scored.csv")
    truth = pd.read_csv(validation)["diagnosis"] == "malignant"
    assert roc_auc_score(truth, scored["probability"]) == pytest.approx(card["value"], abs=1e-6)

    script = textwrap.dedent(f"""
        import json, pandas as pd, hpo
        best = hpo.load_best("inf", root={str(inference_study)!r})
        frame = pd.read_csv({str(validation)!r})
        print(json.dumps({{"p": best.predict_proba(frame).tolist(), "labels": best.predict(frame).tolist()}}))
    """)
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    api = json.loads(fresh.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(api["p"], scored["probability"], atol=1e-6, rtol=0)
    assert api["labels"] == scored["label"].tolist()


def test_best_shows_the_threshold_with_precision_and_recall(inference_study: Path) -> None:
    card = json.loads((inference_study / "inf" / "best" / "model.json").read_text())
    text = _invoke(["best", "--study", "inf", "--root", str(inference_study)])
    assert text.exit_code == 0, text.stderr
    t = card["threshold"]
    assert (
        f"Threshold: {t['value']:.4g} (max_f1): precision {t['precision']:.3f}, recall {t['recall']:.3f}" in text.stdout
    )
    assert f"ECE {card['calibration']['ece']:.4f}" in text.stdout
    as_json = json.loads(_invoke(["best", "--study", "inf", "--root", str(inference_study), "--json"]).stdout)
    assert as_json["inference"]["threshold"] == t
    assert as_json["inference"]["temperature"] == card["temperature"]


def test_a_kept_column_named_like_an_output_column_exits_2_and_writes_nothing(
    inference_study: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    pd.read_csv(DATASET).head(5).assign(label=["a", "b", "c", "d", "e"]).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    result = _invoke(
        ["predict", "--study", "inf", "--root", str(inference_study), str(source), "-o", str(out), "--keep", "label"]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {source}: --keep column 'label' would be copied to the output"), (
        result.stderr
    )
    assert "rename the column in the input file and pass the new name to --keep" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "previous\n"


def test_a_semicolon_separated_file_gets_the_separator_hint(inference_study: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.read_csv(DATASET).head(5).to_csv(source, index=False, sep=";")
    result = _invoke(["predict", "--study", "inf", "--root", str(inference_study), str(source)])
    assert result.exit_code == 2, result.output
    assert "missing feature columns 'mean_radius'" in result.stderr
    assert "(its header holds ';': save the file with commas between the columns)" in result.stderr
    assert not (tmp_path / "in.predictions.csv").exists()
