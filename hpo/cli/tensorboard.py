"""``hpo tensorboard``: start TensorBoard on a study's ``tb/`` folder."""

from __future__ import annotations

from pathlib import Path

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, root_option


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all, warned).")
@click.option("--port", type=click.IntRange(0, 65535), default=6006, show_default=True, help="Port (0: any free).")
@click.option("--json", "as_json", is_flag=True, help="Print where it listens as one JSON line.")
@handles_errors
def tensorboard(study_name: str, root: Path, host: str, port: int, as_json: bool) -> None:
    """Start TensorBoard on studies/<study>/tb and print its URL; Ctrl-C stops it (exit code 0).

    Each trial is one run; the HParams tab shows one row per trial with its parameters, hp_metric (the value the
    trial returned to Optuna) and hp/* metrics at the best epoch.

    \b
    Example:
      hpo tensorboard --study default
    """
    from hpo.cli._serve import serve_until_interrupted
    from hpo.paths import validate_study_name
    from hpo.views.serving import start_tensorboard

    server = start_tensorboard(validate_study_name(study_name, "--study"), root=root, host=host, port=port)
    serve_until_interrupted(server, "TensorBoard", as_json)
