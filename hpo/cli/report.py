"""``hpo report``: write a self-contained HTML report of a study, with PNGs of its main plots."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries, root_option, storage_option


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@storage_option
@root_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write index.html and the PNGs into (default: studies/<study>/report).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@handles_errors
def report(study_name: str, storage: str | None, root: Path, out: Path | None, as_json: bool) -> None:
    """Write index.html (opens offline: plotly.js is inlined) and PNGs of the main plots of a study.

    The report shows the optimisation history, the learning curves (pruned trials included), parameter
    importances, parallel coordinates, slice plots, the best trial's parameters and metrics, and the reliability
    diagram when best/reliability.png exists. Plots a study has too few trials for are replaced by the reason.

    \b
    Example:
      hpo report --study default --out report/
    """
    from rich.console import Console

    from hpo.best.folder import FRONT_FILE, RELIABILITY_FILE
    from hpo.paths import StudyPaths, validate_study_name
    from hpo.views.report import write_report

    quiet_libraries()
    console = Console(stderr=True)
    spinner = console.status("Drawing the plots...") if console.is_terminal else contextlib.nullcontext()
    with spinner:
        result = write_report(validate_study_name(study_name, "--study"), root=root, storage=storage, out=out)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"Report: {result.index} ({len(result.plots)} plots)")
    for path in result.pngs:
        click.echo(f"PNG:    {path}")
    for plot, reason in result.missing.items():
        click.echo(f"Not drawn: {plot}: {reason}")
    for reason in result.unreadable.values():
        click.echo(f"Not read: {reason}", err=True)
    best = StudyPaths(root, study_name).best
    if RELIABILITY_FILE in result.unreadable:
        click.echo("No reliability diagram: best/reliability.png cannot be read (see above).")
    elif not result.reliability and (best / FRONT_FILE).is_file():
        click.echo(f"Reliability diagrams: one per Pareto-optimal trial, {best}/trial_NNNN/reliability.png")
    elif not result.reliability:
        click.echo("No reliability diagram: best/reliability.png does not exist for this study.")
