"""``hpo studies``: list the studies with their trials by state, best value and last update."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hpo.cli import EXIT_BAD_INPUT, EXIT_CODES_HELP, handles_errors, main, quiet_libraries

if TYPE_CHECKING:
    from hpo.views.studies_list import StudyOverview


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

    A study whose database cannot be read (damaged, not an Optuna storage, written by another Optuna version) is
    listed as such, with the reason on stderr (and in "error" with --json); the others are listed as usual. The exit
    code is 0 when at least one study could be read (or there are none), 2 when every one of them failed.

    \b
    Example:
      hpo studies --json
    """
    from hpo.cli._table import print_table
    from hpo.study.storage import STORAGE_ENV, redact_url
    from hpo.views.studies_list import list_studies

    quiet_libraries()
    found = list_studies(root=root, storage=storage)
    url = storage or os.environ.get(STORAGE_ENV)
    unreadable = [s for s in found if s.error is not None]
    if as_json:
        click.echo(json.dumps([s.to_json() for s in found], indent=2))
    elif not found:
        click.echo(f"No studies in {redact_url(url) if url else root}; run `hpo run` to start one.")
    else:
        print_table(("study", "direction", "trials", "best", "last update"), [_row(s) for s in found])
    for s in unreadable:
        click.echo(f"error: {s.name}: {s.error}", err=True)
    if unreadable and len(unreadable) == len(found):
        sys.exit(EXIT_BAD_INPUT)


def _row(s: StudyOverview) -> tuple[str, ...]:
    if s.error is not None:
        return (s.name, "-", "cannot be read (see the error below)", "-", "-")
    return (
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
