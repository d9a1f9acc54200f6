"""``hpo evaluate``: score a study's saved model (and ensemble) once on its held-out test split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, root_option


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@root_option
@click.option("--device", help="Where the model runs, e.g. cpu or cuda:1 (default: a CUDA GPU if any, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@handles_errors
def evaluate(study_name: str, root: Path, device: str | None, as_json: bool) -> None:
    """Score the study's best/ (and best/ensemble) on the test rows held out from the search (data.test_fraction):
    AUROC with a bootstrap 95% interval, log loss, Brier score, and accuracy, precision and recall at the saved
    threshold. The scores are written to best/model.json (`test`) and to the best trial's TensorBoard run (test/...).
    `hpo run` does this by itself when a study finishes; nothing here ever reaches Optuna.

    \b
    Example:
      hpo evaluate --study default
      hpo evaluate --study default --json
    """
    from hpo.errors import StudyError
    from hpo.evaluation.test_split import evaluate_best
    from hpo.paths import StudyPaths, validate_study_name

    paths = StudyPaths(root, validate_study_name(study_name, "--study"))
    if not paths.study_dir.is_dir():
        raise StudyError(
            f"{paths.study_dir}: no study {study_name!r} here (no such folder); `hpo studies --root {root}` lists the "
            "studies there, and --root picks another folder"
        )
    evaluation = evaluate_best(paths, device)
    if evaluation is None:
        raise StudyError(
            f"{paths.best}: the study keeps no test split (its data.test_fraction is 0, or it had fewer than 500 "
            "rows); set data.test_fraction (e.g. 0.2) in a new study to hold rows out of the search"
        )
    if as_json:
        click.echo(json.dumps({"trial": evaluation.trial, **evaluation.card_entries()}, indent=2))
        return
    for name, scores in (("model", evaluation.model), ("ensemble", evaluation.ensemble)):
        if scores is None:
            continue
        click.echo(
            f"Test ({name} of trial {evaluation.trial}, {scores.n} held-out rows: {scores.n_positive} positive): AUROC "
            f"{scores.auroc:.4f} (95% CI {scores.auroc_low:.4f}-{scores.auroc_high:.4f}), log loss "
            f"{scores.log_loss:.4f}, Brier {scores.brier:.4f}; at threshold {scores.threshold:.4g}: accuracy "
            f"{scores.accuracy:.4f}, precision {scores.precision:.4f}, recall {scores.recall:.4f}"
        )
    click.echo(f"Recorded in {paths.best}/model.json (test).")
