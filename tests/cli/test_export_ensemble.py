"""``hpo export`` of an ensemble folder: refused in plain words, since an ONNX file holds one model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from hpo.cli import main


def test_an_ensemble_is_refused_in_plain_words(inference_study: Path, tmp_path: Path) -> None:
    best = inference_study / "inf" / "best"
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    for member in ("trial_0000", "trial_0001"):
        shutil.copytree(best, ensemble / member)
    card = json.loads((best / "model.json").read_text())
    card = {**card, "kind": "ensemble", "members": ["trial_0000", "trial_0001"]}
    (ensemble / "model.json").write_text(json.dumps(card))
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", "--model", str(ensemble), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {ensemble}: holds an ensemble of 2 models, and export writes one model")
    assert "Predictor" not in result.stderr and "pick one with --trial N" in result.stderr
    assert not out.exists()


def test_an_ensemble_member_asked_by_trial_is_pointed_to_its_folder(inference_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(inference_study / "inf", root / "inf")
    member = root / "inf" / "best" / "ensemble" / "member_0042"
    shutil.copytree(root / "inf" / "best", member, ignore=shutil.ignore_patterns("ensemble"))
    result = CliRunner().invoke(
        main, ["export", "--study", "inf", "--root", str(root), "--trial", "42", "-o", "m.onnx"]
    )
    assert result.exit_code == 2, result.output
    assert f"trial 42 is a member of its ensemble, in {member} (give that as --model)" in result.stderr
    other = CliRunner().invoke(main, ["export", "--study", "inf", "--root", str(root), "--trial", "41", "-o", "m.onnx"])
    assert other.exit_code == 2 and "member of its ensemble" not in other.stderr
