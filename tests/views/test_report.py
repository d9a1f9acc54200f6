"""hpo.views.report and hpo.views.figures: a report that opens offline, with every plot or the reason it is missing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import optuna
import plotly.offline
import pytest
from click.testing import CliRunner

from hpo.cli import main
from hpo.config.experiment import load_experiment
from hpo.search.run import run_study
from hpo.views.figures import PLOTS
from hpo.views.report import write_report
from tests.conftest import run_hpo, tiny_space

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_of_a_study_has_every_plot_inline(tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    reliability = root / "tiny" / "best" / "reliability.png"
    matplotlib.image.imsave(reliability, [[0.0, 1.0], [1.0, 0.0]])

    result = write_report("tiny", root=root, out=tmp_path / "out")
    assert result.index == tmp_path / "out" / "index.html"
    assert result.plots == [spec.key for spec in PLOTS] and result.missing == {}
    assert result.reliability
    page = result.index.read_text(encoding="utf-8")
    library = plotly.offline.get_plotlyjs()
    assert page.count(library) == 1  # plotly.js inlined once ...
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", page)  # ... and nothing to fetch
    assert "https://" not in page.replace(library, "")
    for spec in PLOTS:
        assert f'id="plot-{spec.key}"' in page
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{root}/tiny/study.db")
    best = study.best_trial
    assert f"<td>trial</td><td>{best.number}</td>" in page
    assert f"<td>lr</td><td>{best.params['lr']:.6g}</td>" in page
    assert "data:image/png;base64," in page  # the reliability diagram is embedded
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the tiny study should have pruned trials for the learning curves to show"
    curves = page[page.index('id="plot-intermediate_values"') :]
    assert all(f'"name":"Trial{n}"' in curves for n in pruned)  # pruned trials' curves are drawn

    assert [p.name for p in result.pngs] == [f"{s.key}.png" for s in PLOTS if s.png]
    for png in result.pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        height, width = matplotlib.image.imread(png).shape[:2]
        assert (width, height) == (1200, 672)


@pytest.mark.parametrize("n_trials", [0, 1])
def test_report_of_a_young_study_says_why_plots_are_missing(tmp_path: Path, n_trials: int) -> None:
    root = tmp_path / "studies"
    if n_trials == 0:
        (root / "young").mkdir(parents=True)
        optuna.create_study(study_name="young", storage=f"sqlite:///{root}/young/study.db", direction="maximize")
    else:
        space = tmp_path / "young.yaml"
        space.write_text(json.dumps(tiny_space(study={"name": "young", "n_trials": 1}, training={"max_epochs": 1})))
        run_study(load_experiment(space), root=root)

    result = write_report("young", root=root)
    assert result.index == root / "young" / "report" / "index.html"
    page = result.index.read_text(encoding="utf-8")
    assert "Not drawn: needs at least 2 completed trials, the study has" in page
    reason = result.missing["param_importances"]
    assert reason.startswith(f"needs at least 2 completed trials, the study has {n_trials}")
    if n_trials == 0:
        assert set(result.missing) == {spec.key for spec in PLOTS} and result.pngs == []
        assert "No completed trial yet" in page and "no trial has reported" in page
        text = CliRunner().invoke(main, ["report", "--study", "young", "--root", str(root)])
        assert text.exit_code == 0, text.output
        assert f"{root}/young/report/index.html (0 plots)" in text.output
        assert "Not drawn: param_importances: needs at least 2 completed trials, the study has 0" in text.output
    else:
        assert result.plots == ["optimization_history", "intermediate_values", "parallel_coordinate", "slice"]
        assert len(result.pngs) == 3
    if n_trials == 0:
        assert "best/reliability.png has not been written" in page
    else:  # the completed trial became the best, which writes best/reliability.png
        assert 'alt="Reliability diagram of the best model"' in page


@pytest.mark.slow
def test_report_command(tiny_study: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_study / "tiny", tmp_path / "studies" / "tiny")
    result = run_hpo(["report", "--study", "tiny", "--out", "r", "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["index"] == "r/index.html" and (tmp_path / "r" / "index.html").is_file()
    assert written["missing"] == {} and len(written["pngs"]) == 4
    missing = run_hpo(["report", "--study", "nope"], cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_report_of_a_multi_objective_study_draws_the_pareto_front(pareto_study: Path, tmp_path: Path) -> None:
    result = write_report("pareto", root=pareto_study, out=tmp_path / "out")
    assert result.plots == [
        "optimization_history",
        "param_importances",
        "parallel_coordinate",
        "slice",
        "pareto_front",
    ]
    assert result.missing == {
        "intermediate_values": "Optuna records no per-epoch values for multi-objective trials (they are not pruned); "
        "the learning curves are in TensorBoard (`hpo tensorboard`)"
    }
    png = tmp_path / "out" / "pareto_front.png"
    assert png in result.pngs and png.read_bytes()[:8] == PNG_MAGIC
    page = result.index.read_text(encoding="utf-8")
    assert 'id="plot-pareto_front"' in page and "maximize val/auroc, minimize model/params" in page
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{pareto_study}/pareto/study.db")
    front = page[page.index("<h2>Pareto front</h2>") :]
    for trial in study.best_trials:
        assert f"<td>best/trial_{trial.number:04d}</td>" in front
    plot = page[page.index('id="plot-pareto_front"') :].replace("\\u002f", "/")  # plotly's JSON escapes "/"
    assert '"text":"val/auroc"' in plot and '"text":"model/params"' in plot  # the axes are named by the metrics
