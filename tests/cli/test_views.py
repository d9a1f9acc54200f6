"""The help of the commands that look at results: an example and the exit codes, like every other command."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hpo.cli import main


@pytest.mark.parametrize("command", ["studies", "report", "dashboard", "tensorboard"])
def test_help_has_an_example_and_the_exit_codes(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"hpo {command}" in result.output
    assert "Exit codes" in result.output and "busy port" in result.output and "--json" in result.output


def test_group_help_documents_exit_codes_and_output() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for text in ("studies", "report", "dashboard", "tensorboard", "130", "NO_COLOR", "Ctrl-C is how they stop"):
        assert text in result.output
