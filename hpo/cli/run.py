"""``hpo run``: run or resume a study from a search-space file."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries


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
@handles_errors
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
    from hpo.cli._progress import TrialProgress
    from hpo.study import run_study

    quiet_libraries()

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
