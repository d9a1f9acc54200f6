"""The ``hpo`` command: parses arguments, calls the library, prints results and maps errors to exit codes.

One module per command; this one holds the group, the exit codes and the error handling they share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  1    unexpected error (a bug: please report it with the traceback)
  2    bad input: search-space file, data, study name, storage, weights, rows to predict, busy port
  130  interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM
       (dashboard, tensorboard: Ctrl-C is how they stop, exit 0)
Output: --json for scripts; colours and progress bars only on a terminal; NO_COLOR is respected.
"""
F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def handles_errors(func: F) -> F:
    """Turn the library's errors into a one-paragraph message and exit code 2."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hpo.errors import HpoError

        try:
            return func(*args, **kwargs)
        except HpoError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


#: Options shared by the commands that open a study.
root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("studies"),
    show_default=True,
    help="Folder holding one folder per study.",
)
storage_option = click.option(
    "--storage",
    help="SQLAlchemy URL of the Optuna storage (default: $HPO_STORAGE, else sqlite:///studies/<study>/study.db).",
)


def model_options(func: F) -> F:
    """``--study``/``--trial``/``--model``/``--allow-stale``: which saved model a command uses (predict, export)."""
    for option in reversed(
        (
            click.option("--study", "study_name", help="The best model of this study (default: 'default')."),
            click.option(
                "--trial", type=int, help="With --study: one trial's model, e.g. of a Pareto front (hpo best lists it)."
            ),
            click.option(
                "--model",
                "model_dir",
                type=click.Path(path_type=Path),
                help="The model in this folder (one holding model.json and model.pt) instead of a study's best.",
            ),
            click.option(
                "--allow-stale",
                is_flag=True,
                help="Use best/ even when the study's storage says another trial is the best.",
            ),
        )
    ):
        func = option(func)
    return func


def load_chosen_model(
    study_name: str | None, trial: int | None, model_dir: Path | None, root: Path, device: str | None, allow_stale: bool
) -> Any:
    """The saved model that :func:`model_options` chose (a ``Predictor``, or the study's ensemble).

    Raises:
        ConfigError: --study or --trial combined with --model.
    """
    from hpo.errors import ConfigError

    if study_name is not None and model_dir is not None:
        raise ConfigError("--study and --model: give one of them (a study's best model, or a model folder)")
    if trial is not None and model_dir is not None:
        raise ConfigError(
            "--trial and --model: --trial picks a trial of --study's best/; a --model folder is one model"
        )
    from hpo.inference.loading import load_best, load_model
    from hpo.paths import validate_study_name

    if model_dir is not None:
        return load_model(model_dir, device)
    name = validate_study_name(study_name or "default", "--study")
    return load_best(name, root, device, trial=trial, allow_stale=allow_stale)


def quiet_libraries() -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="hpo")
def main() -> None:
    """Tune a binary classifier (a PyTorch Lightning MLP) with Optuna, logging every trial to TensorBoard.

    \b
    Example:
      hpo run                                   # search_spaces/default.yaml on the embedded data
      hpo best --study default
      hpo report --study default                # studies/default/report/index.html
      hpo dashboard --study default             # optuna-dashboard on http://127.0.0.1:8080
      hpo predict --study default new_rows.csv
    """


def _register() -> None:
    # Each module adds its command to `main`.
    from hpo.cli import best, dashboard, evaluate, export, predict, report, run, studies, tensorboard  # noqa: F401


_register()
