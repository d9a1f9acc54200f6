"""What ``hpo dashboard`` and ``hpo tensorboard`` share: announcing the server and stopping it on Ctrl-C."""

from __future__ import annotations

import json
import signal
from types import FrameType

import click

from hpo.views.serving import RunningServer, binds_all_interfaces

__all__ = ["serve_until_interrupted"]


def serve_until_interrupted(server: RunningServer, what: str, as_json: bool) -> None:
    """Print where ``server`` listens (a JSON line with ``--json``), serve until Ctrl-C or SIGTERM, then close it."""
    if binds_all_interfaces(server.host):
        click.echo(
            f"warning: {what} listens on all interfaces ({server.host or '0.0.0.0'}:{server.port}): anyone who can "
            "reach this machine can see the study, and change it, with no password. Leave --host out to stay on "
            "127.0.0.1.",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(server.to_json()))
    else:
        click.echo(f"{what} for study {server.study!r} ({server.source}): {server.url}")
        if server.artifact_dir is not None:
            click.echo(f"Artifacts: {server.artifact_dir}")
    click.echo("Press Ctrl-C to stop.", err=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo(f"Stopped {what}.", err=True)
    finally:
        server.close()


def _stop(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops a server as cleanly as Ctrl-C does."""
    raise KeyboardInterrupt
