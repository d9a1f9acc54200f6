"""``hpo studies``: list the studies with their trials by state, best value and last update."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries


@main.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("studies"),
    show_default=True,
    help="Folder holding one folder per study; every <root>/<study>/study.db is read.",
)
@click.option("--storage", help="SQLAlchemy URL whose studies to list instead (default: $HPO_STORAGE, if set).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@handles_errors
def studies(root: Path, storage: str | None, as_json: bool) -> None:
    """List the studies: name, direction, trials by state, best value and last update.

    \b
    Example:
      hpo studies --json
    """
    from hpo.cli._table import print_table
    from hpo.views.studies_list import list_studies

    quiet_libraries()
    found = list_studies(root=root, storage=storage)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in found], indent=2))
        return
    if not found:
        click.echo(f"No studies in {storage or root}; run `hpo run` to start one.")
        return
    rows = [
        (
            s.name,
            f"{s.direction} {s.metric or ''}".strip(),
            ", ".join(f"{n} {state}" for state, n in s.trials.items()) or "none",
            f"front of {s.pareto_front}"
            if s.pareto_front is not None
            else "-"
            if s.best_value is None
            else f"{s.best_value:.6g} (#{s.best_trial})",
            s.last_update.strftime("%Y-%m-%d %H:%M:%S") if s.last_update else "-",
        )
        for s in found
    ]
    header = ("study", "direction", "trials", "best", "last update")
    print_table(header, rows)
