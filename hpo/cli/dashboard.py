"""``hpo dashboard``: serve a study's storage (and artifact store) with optuna-dashboard."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries, root_option, storage_option


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@storage_option
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all, warned).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free).")
@click.option("--json", "as_json", is_flag=True, help="Print where it listens as one JSON line.")
@handles_errors
def dashboard(study_name: str, storage: str | None, root: Path, host: str, port: int, as_json: bool) -> None:
    """Serve the study's storage with optuna-dashboard until Ctrl-C (which exits with 0).

    The dashboard shows every study of that storage and lets you add notes; studies/<study>/artifacts/ is served
    as the artifact store when it exists. It listens on 127.0.0.1 only, unless --host says otherwise.

    \b
    Example:
      hpo dashboard --study default --port 8081
    """
    from hpo.cli._serve import serve_until_interrupted
    from hpo.paths import validate_study_name
    from hpo.views.serving import start_dashboard

    quiet_libraries()
    # The dashboard recomputes importances on every refresh; with few trials Optuna warns each time that they are
    # rough. The dashboard shows them anyway, so the repeated warning is only noise on the server's console.
    warnings.filterwarnings("ignore", message="Some regimes for parameter", category=UserWarning)
    server = start_dashboard(
        validate_study_name(study_name, "--study"), root=root, storage=storage, host=host, port=port
    )
    serve_until_interrupted(server, "optuna-dashboard", as_json)
