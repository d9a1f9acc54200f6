"""``hpo export``: write the best model of a study (or a saved model folder), preprocessing included, as ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, load_chosen_model, main, model_options, root_option


@main.command(epilog=EXIT_CODES_HELP)
@model_options
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="The file format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write, e.g. model.onnx (replaced if it exists).",
)
@click.option("--opset", type=int, default=17, show_default=True, help="The ai.onnx opset of the graph (>= 13).")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@handles_errors
def export(
    study_name: str | None,
    trial: int | None,
    model_dir: Path | None,
    allow_stale: bool,
    export_format: str,
    output: Path,
    opset: int,
    root: Path,
    as_json: bool,
) -> None:
    """Write a model with its preprocessing as one ONNX file that onnxruntime runs on raw feature columns.

    The graph has one input per feature column, named as the feature: numeric columns are double [N, 1] (NaN for a
    blank), categorical columns string [N, 1] holding the level's text, stripped ('' for a blank). It imputes,
    scales, encodes and runs the network, and returns `probability` (of the positive label, as `hpo predict` writes
    it), `logit` and `positive` (probability >= the saved threshold). The threshold and the labels are in the
    model's metadata (hpo.threshold, hpo.labels).

    \b
    Example:
      hpo export --study titanic -o titanic.onnx
      hpo export --study pareto --trial 11 -o small.onnx
      hpo export --model studies/default/best -o default.onnx --json
    """
    from hpo.inference.export import ExportError, export_onnx
    from hpo.inference.predictor import Predictor

    predictor = load_chosen_model(study_name, trial, model_dir, root, "cpu", allow_stale)
    if not isinstance(predictor, Predictor):
        raise ExportError(
            f"{predictor.folder}: holds an ensemble of {len(predictor.members)} models, and export writes one model; "
            "pick one with --trial N (`hpo best` shows the trial numbers) or --model with one model's folder"
        )
    summary = export_onnx(predictor, output, opset=opset)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    negative, positive = summary.labels
    click.echo(
        f"Wrote {summary.path} ({export_format}, opset {summary.opset}, {summary.bytes:,} bytes): "
        f"{len(summary.inputs)} inputs, {summary.scaling} scaling, probability of {positive!r} "
        f"(else {negative!r}) at threshold {summary.threshold:.4g}."
    )
    for name, onnx_type, kind in summary.inputs:
        click.echo(f"  {name!r}: {onnx_type} [N, 1], {kind}")
