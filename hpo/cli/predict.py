"""``hpo predict``: predict a CSV file with the best model of a study (or a saved model folder)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, load_chosen_model, main, model_options, root_option


@main.command(epilog=EXIT_CODES_HELP)
@model_options
@click.argument("input_csv", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output CSV (default: INPUT_CSV's name with .predictions.csv, in the same folder).",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="COL",
    help="Copy this input column to the output (repeatable; default: the model's id columns the input has); not one "
    "named probability or label, the output's own columns.",
)
@root_option
@click.option("--device", help="Where the model runs, e.g. cpu or cuda:1 (default: a CUDA GPU if any, else cpu).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@handles_errors
def predict(
    input_csv: Path,
    study_name: str | None,
    trial: int | None,
    model_dir: Path | None,
    output: Path | None,
    keep: tuple[str, ...],
    allow_stale: bool,
    root: Path,
    device: str | None,
    as_json: bool,
) -> None:
    """Predict every row of INPUT_CSV: writes its id columns (or a 0-based `row`), `probability` of the positive
    label and `label` (cut at the model's saved threshold, in the training data's own label values).

    INPUT_CSV has the training file's shape: the model's feature columns by name, with blanks and text as in
    training (the target may be there); other columns are ignored, with a note. Blanks and levels the model never saw
    are handled as in training and counted in the summary. The file is read in chunks, so it may be larger than
    memory. On bad input (a missing feature column, text in a numeric column) the error names the columns and lines,
    and no output is written.

    \b
    Example:
      hpo predict --study default new_patients.csv -o scored.csv
      hpo predict --model studies/default/best new_patients.csv
      hpo predict --study pareto --trial 11 new_patients.csv
      hpo predict --study titanic passengers.csv --keep name
    """
    from hpo.inference.prediction_file import predict_csv

    predictor = load_chosen_model(study_name, trial, model_dir, root, device, allow_stale)
    summary = predict_csv(predictor, input_csv, output, keep=keep)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    negative, positive = summary.labels
    click.echo(
        f"Wrote {summary.rows} predictions to {summary.output}: {summary.positives} {positive!r}, "
        f"{summary.rows - summary.positives} {negative!r} (threshold {summary.threshold:.4g})."
    )
    if summary.ignored_columns:
        shown = ", ".join(repr(c) for c in summary.ignored_columns[:10])
        more = f" and {len(summary.ignored_columns) - 10} more" if len(summary.ignored_columns) > 10 else ""
        click.echo(f"note: ignored the columns {shown}{more} (not features of the model; --keep COL copies one)")
    for what, counts in (
        ("blank cells (imputed, or their own level)", summary.blanks),
        ("levels the model never saw (encoded as other)", summary.unseen),
        ("values beyond the clipping bound (clipped)", summary.clipped),
    ):
        if counts:
            click.echo(f"note: {what}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
