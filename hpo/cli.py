"""The ``hpo`` command: parses arguments, calls the library, prints results and maps errors to exit codes."""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  1    unexpected error (a bug: please report it with the traceback)
  2    bad input: search-space file, data, study name, storage, weights
  130  interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM
"""
F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _handles_errors(func: F) -> F:
    """Turn the library's errors into a one-paragraph message and exit code 2."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hpo.errors import HpoError

        try:
            return func(*args, **kwargs)
        except HpoError as exc:
            _fail(exc)

    return wrapper  # type: ignore[return-value]


def _quiet_libraries() -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class _Interrupts:
    """First Ctrl-C or SIGTERM: finish the running trial, then stop. Second: abort it (Optuna marks it failed)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        click.echo(
            f"\n{signal.Signals(signum).name}: finishing the running trial, then stopping; rerun the same command to "
            "finish the budget. Press Ctrl-C again to abort the trial now.",
            err=True,
        )

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="hpo")
def main() -> None:
    """Tune a binary classifier (a PyTorch Lightning MLP) with Optuna, logging every trial to TensorBoard.

    \b
    Example:
      hpo run                                   # search_spaces/default.yaml on the embedded data
      hpo best --study default
    """


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("space_file", required=False, default="search_spaces/default.yaml", type=click.Path(path_type=Path))
@click.option("--study", "study_name", help="Study name (default: study.name in the file).")
@click.option("--n-trials", type=int, help="Total finished trials the study should have (overrides study.n_trials).")
@click.option("--timeout", type=float, help="Stop starting new trials after this many seconds.")
@click.option(
    "--storage",
    help="SQLAlchemy URL of the Optuna storage (default: $HPO_STORAGE, else sqlite:///studies/<study>/study.db).",
)
@click.option("--seed", type=int, help="Seed of the sampler and of every trial's training.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("studies"),
    show_default=True,
    help="Folder holding one folder per study.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (trial lines go to stderr).")
@_handles_errors
def run(
    space_file: Path,
    study_name: str | None,
    n_trials: int | None,
    timeout: float | None,
    storage: str | None,
    seed: int | None,
    root: Path,
    as_json: bool,
) -> None:
    """Run (or resume) the study described by SPACE_FILE until it has n_trials finished trials.

    Each trial trains an MLP with PyTorch Lightning, logs to studies/<study>/tb/trial_NNNN, and the best trial's
    weights go to studies/<study>/best/. Rerunning an interrupted run finishes the remaining trials.

    \b
    Example:
      hpo run search_spaces/default.yaml --n-trials 30 --seed 1
    """
    from hpo.config import load_experiment

    experiment = load_experiment(space_file).with_overrides(
        study_name=study_name, n_trials=n_trials, timeout=timeout, seed=seed
    )
    # The heavy imports (torch, Lightning) come after the file is validated, so bad input fails fast.
    from hpo.cli_progress import TrialProgress
    from hpo.study import run_study

    _quiet_libraries()

    interrupts = _Interrupts()
    out = sys.stderr if as_json else sys.stdout
    with (
        TrialProgress(experiment.study.name, experiment.study.n_trials, experiment.study.metric, out) as progress,
        interrupts.installed(),
    ):
        try:
            result = run_study(
                experiment, root=root, storage=storage, on_trial_end=progress.update, should_stop=interrupts.requested
            )
        except KeyboardInterrupt:
            progress.stop()
            click.echo("Interrupted: the running trial is marked failed; rerun the same command to finish.", err=True)
            sys.exit(interrupts.exit_code)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "study": result.study,
                    "storage": result.storage,
                    "finished": result.finished,
                    "budget": result.budget,
                    "ran": result.ran,
                    "best_trial": result.best_trial,
                    "best_value": result.best_value,
                    "best_dir": str(result.best_dir) if result.best_dir else None,
                    "stopped_early": result.stopped_early,
                },
                indent=2,
            )
        )
    else:
        budget = f"/{result.budget}" if result.budget else ""
        click.echo(f"Study {result.study!r}: {result.finished}{budget} trials finished ({result.ran} in this run).")
        if result.best_trial is not None:
            click.echo(
                f"Best {experiment.study.metric} = {result.best_value:.6g} (trial {result.best_trial}); "
                f"weights in {result.best_dir}"
            )
        click.echo(
            f"See: hpo best --study {result.study} | tensorboard --logdir {root / result.study / 'tb'} | "
            f"optuna-dashboard {result.storage}"
        )
    if result.stopped_early:
        sys.exit(interrupts.exit_code)


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@click.option("--storage", help="SQLAlchemy URL (default: $HPO_STORAGE, else sqlite:///studies/<study>/study.db).")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("studies"),
    show_default=True,
    help="Folder holding one folder per study.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_handles_errors
def best(study_name: str, storage: str | None, root: Path, as_json: bool) -> None:
    """Show the best trial of a study (from its storage) and where its weights are.

    \b
    Example:
      hpo best --study default --json
    """
    from hpo.paths import validate_study_name
    from hpo.study import describe_best

    _quiet_libraries()
    summary = describe_best(validate_study_name(study_name, "--study"), root=root, storage=storage)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
    click.echo(f"Study:   {summary.study} ({summary.direction} {summary.metric}; trials: {states})")
    click.echo(f"Storage: {summary.storage}")
    click.echo(f"Best:    trial {summary.trial}, value {summary.value!r}")
    click.echo("Params:")
    for key, value in summary.params.items():
        click.echo(f"  {key}: {value}")
    if summary.metrics:
        click.echo("Validation metrics at the best epoch:")
        for key, value in summary.metrics.items():
            click.echo(
                f"  {key}: {value:.6g}" if isinstance(value, float) and math.isfinite(value) else f"  {key}: {value}"
            )
    if summary.weights_status == "ok":
        click.echo(f"Weights: {summary.weights_dir}/model.pt (+ model.json)")
    elif summary.weights_status == "stale":
        click.echo(
            f"Weights: {summary.weights_dir} holds an older trial; the best trial's weights were written on "
            "another host sharing this storage."
        )
    else:
        click.echo("Weights: none under this root; they live on the host that ran the best trial.")


if __name__ == "__main__":
    main()
