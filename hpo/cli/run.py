"""``hpo run``: run or resume a study from a search-space file, in one process or several workers."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries, root_option, storage_option

if TYPE_CHECKING:
    from hpo.config.experiment import Experiment
    from hpo.data.loading import PreparedData
    from hpo.search.run import RunResult
    from hpo.search.warm_start import WarmStart


class _Interrupts:
    """First Ctrl-C or SIGTERM: finish the running trial, then stop. Second: abort it (Optuna marks it failed).

    ``forward`` (the worker pool's ``send_signal``) receives each signal instead when workers run the trials.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.forward: Callable[[int], None] | None = None

    def requested(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        self.signal = self.signal or signum
        if self.forward is not None:
            self.forward(signum)
        elif not first:
            raise KeyboardInterrupt
        if first:
            click.echo(
                f"\n{signal.Signals(signum).name}: finishing the running trial(s), then stopping; rerun the same "
                "command to finish the budget. Press Ctrl-C again to abort now.",
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
@click.argument("overrides", nargs=-1, metavar="[KEY.PATH=VALUE]...")
@click.option("--study", "study_name", help="Study name (default: study.name in the file).")
@click.option("--n-trials", type=int, help="Total finished trials the study should have (overrides study.n_trials).")
@click.option("--timeout", type=float, help="Stop starting new trials after this many seconds.")
@storage_option
@click.option(
    "--storage-retry",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long to keep retrying a lost storage connection (a database restart) before stopping with exit code "
    "2; the running trial carries on meanwhile (default: $HPO_STORAGE_RETRY, else 60).",
)
@click.option("--seed", type=int, help="Seed of the sampler and of every trial's training.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes sharing the study on this machine (CPU threads are split between them).",
)
@click.option("--threads", type=click.IntRange(1, 1024), help="Torch CPU threads of this process (default: all).")
@click.option(
    "--from",
    "from_study",
    metavar="STUDY[:K]",
    help="Start a new study with the K (default 5) best configurations of STUDY (same --root/--storage, or "
    "--from-storage), keeping the parameters this search space can take.",
)
@click.option("--from-storage", help="SQLAlchemy URL of --from's storage (default: the same as this study's).")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (trial lines go to stderr).")
@handles_errors
def run(
    space_file: Path,
    overrides: tuple[str, ...],
    study_name: str | None,
    n_trials: int | None,
    timeout: float | None,
    storage: str | None,
    storage_retry: float | None,
    seed: int | None,
    workers: int,
    threads: int | None,
    from_study: str | None,
    from_storage: str | None,
    root: Path,
    as_json: bool,
) -> None:
    """Run (or resume) the study described by SPACE_FILE until it has n_trials finished trials.

    Each trial trains an MLP with PyTorch Lightning, logs to studies/<study>/tb/trial_NNNN, and the best trial's
    weights go to studies/<study>/best/. Rerunning an interrupted run finishes the remaining trials. The same
    command started on several machines with one --storage (or $HPO_STORAGE) joins one study. KEY.PATH=VALUE
    words override keys of the file (checked like the file's own keys, recorded in the study). A study remembers
    the experiment that created it: resuming it with another search space, data, split or training is refused.

    \b
    Example:
      hpo run search_spaces/default.yaml --n-trials 30 --seed 1
      hpo run search_spaces/default.yaml --workers 2
      hpo run search_spaces/default.yaml training.max_epochs=5 params.lr.high=0.3 --study quick
      hpo run search_spaces/default.yaml --study v2 --from default:5
      HPO_STORAGE=postgresql+psycopg://hpo:PASSWORD@db/hpo hpo run search_spaces/default.yaml
    """
    from hpo.config.experiment import load_experiment
    from hpo.config.overrides import is_override
    from hpo.errors import ConfigError

    if from_storage is not None and from_study is None:
        raise ConfigError("--from-storage names where the --from study is; give --from STUDY as well")
    if storage_retry is not None:
        from hpo.study.retry import STORAGE_RETRY_ENV

        if not math.isfinite(storage_retry):
            raise click.BadParameter(f"must be a number of seconds, got {storage_retry}", param_hint="--storage-retry")

        # The storage reads it from the environment, as this run's workers (and their own workers) do.
        os.environ[STORAGE_RETRY_ENV] = repr(storage_retry)

    if is_override(str(space_file)) and not space_file.exists():
        # `hpo run training.max_epochs=5`: the default file, with overrides
        overrides = (str(space_file), *overrides)
        space_file = Path("search_spaces/default.yaml")
    experiment = load_experiment(space_file, overrides).with_overrides(
        study_name=study_name, n_trials=n_trials, timeout=timeout, seed=seed
    )
    # The heavy imports (torch, Lightning) come after the file and the storage URL are checked, so bad input fails
    # fast.
    from hpo.paths import StudyPaths
    from hpo.study.storage import check_study_storage

    check_study_storage(StudyPaths(root, experiment.study.name), storage)
    quiet_libraries()
    from hpo.search.workers import WORKER_INDEX_ENV

    if experiment.study.multi_objective and WORKER_INDEX_ENV not in os.environ:
        click.echo(
            f"note: {len(experiment.study.objectives)} objectives: pruning is off (Optuna does not prune "
            "multi-objective trials); best/ keeps one folder per Pareto-optimal trial",
            err=True,
        )
    warm_start = None
    asked: tuple[str, int] | None = None
    if from_study is not None and WORKER_INDEX_ENV not in os.environ:
        from hpo.search.warm_start import best_configurations, parse_from

        asked = parse_from(from_study)
        name, k = asked
        warm_start = (f"--from {name}", best_configurations(name, k, root=root, storage=from_storage or storage))
    interrupts = _Interrupts()
    out = sys.stderr if as_json else sys.stdout
    reported = _WarmStartReport(experiment.study.name, asked, len(warm_start[1]) if warm_start else 0, out)
    # A worker of --workers leaves the report to its parent.
    report = None if WORKER_INDEX_ENV in os.environ else reported
    if workers > 1:
        argv = ["run", str(space_file), *experiment.overrides, "--study", experiment.study.name, "--root", str(root)]
        for flag, value in (("--n-trials", n_trials), ("--timeout", timeout), ("--seed", seed)):
            if value is not None:
                argv += [flag, str(value)]
        result, code = _run_workers(
            experiment, root, storage, workers, threads, argv, interrupts, out, warm_start, report
        )
    else:
        result, code = _run_here(experiment, root, storage, threads, interrupts, out, warm_start, report)
    if WORKER_INDEX_ENV not in os.environ:  # a worker's parent prints the summary of all of them
        if not reported.done:
            reported(None)  # a finished study: the run stopped before it could queue anything
        _print_result(result, experiment, root, as_json)
    if result.stopped_early:
        sys.exit(interrupts.exit_code)
    sys.exit(code)


class _WarmStartReport:
    """Prints what the warm start queued (``--from``, ``study.enqueue``) once, as soon as the queue is made."""

    def __init__(self, study: str, asked: tuple[str, int] | None, found: int, out: TextIO) -> None:
        self.study = study
        self.asked = asked  # --from's (study, K)
        self.found = found  # the configurations --from's study had
        self.out = out
        self.done = False

    def __call__(self, warm: WarmStart | None) -> None:
        if self.done:
            return
        self.done = True
        echo = functools.partial(click.echo, file=self.out)
        if warm is None:
            if self.asked is not None:
                echo(
                    f"note: --from {self.asked[0]} is ignored: study {self.study!r} already exists (a study is "
                    "warm-started once, when it is created); give a new --study to start one from it"
                )
            return
        echo(f"Queued {len(warm.queued)} configuration(s) from {warm.source} as the first trials.")
        if self.asked is not None and self.found < self.asked[1]:
            name, k = self.asked
            echo(
                f"note: --from {name}:{k}: took {self.found} of the {k} asked: {name} has only {self.found} "
                "feasible completed trial(s)"
            )
        if warm.dropped:
            more = len(warm.dropped) - _NOTES_SHOWN
            rest = f", and {more} more" if more > 0 else ""
            echo(f"note: left out of them: {', '.join(warm.dropped[:_NOTES_SHOWN])}{rest}")
        if warm.over_budget:
            echo(
                f"note: {len(warm.over_budget)} more configuration(s) not queued: queued trials count towards "
                f"n_trials ({warm.budget}), which has room for {len(warm.queued)}; raise --n-trials to run them"
            )


#: The values left out of a warm start that are listed by name.
_NOTES_SHOWN = 10


def _run_here(
    experiment: Experiment,
    root: Path,
    storage: str | None,
    threads: int | None,
    interrupts: _Interrupts,
    out: TextIO,
    warm_start: tuple[str, list[dict[str, Any]]] | None,
    on_queued: Callable[[WarmStart | None], None] | None,
) -> tuple[RunResult, int]:
    from hpo.cli._progress import TrialProgress
    from hpo.search.run import run_study
    from hpo.search.workers import WORKER_INDEX_ENV

    worker_index = int(os.environ.get(WORKER_INDEX_ENV, "0") or 0)
    with (
        TrialProgress(
            experiment.study.name,
            experiment.study.n_trials,
            # The value of a cross-validated trial is the mean over its folds: say so on every line.
            f"{experiment.study.metric}(cv mean)" if experiment.data.cv_folds else experiment.study.metric,
            out,
            tuple(o.metric for o in experiment.study.objectives),
        ) as progress,
        interrupts.installed(),
    ):
        try:
            result = run_study(
                experiment,
                root=root,
                storage=storage,
                on_trial_end=progress.update,
                should_stop=interrupts.requested,
                worker_index=worker_index,
                threads=threads,
                on_data=None if WORKER_INDEX_ENV in os.environ else lambda data: _print_data(data, out),
                finalize=WORKER_INDEX_ENV not in os.environ,
                warm_start=warm_start,
                on_note=lambda line: click.echo(f"note: {line}", err=True),
                on_queued=on_queued,
            )
        except KeyboardInterrupt:
            progress.stop()
            click.echo("Interrupted: the running trial is marked failed; rerun the same command to finish.", err=True)
            sys.exit(interrupts.exit_code)
    return result, 0


def _run_workers(
    experiment: Experiment,
    root: Path,
    storage: str | None,
    workers: int,
    threads: int | None,
    argv: list[str],
    interrupts: _Interrupts,
    out: TextIO,
    warm_start: tuple[str, list[dict[str, Any]]] | None,
    on_queued: Callable[[WarmStart | None], None] | None,
) -> tuple[RunResult, int]:
    from hpo.search.workers import WorkerPool, run_workers

    def started(pool: WorkerPool, per_worker: int) -> None:
        interrupts.forward = pool.send_signal
        click.echo(
            f"Starting {workers} workers on study {experiment.study.name!r} ({per_worker} torch threads each).",
            file=out,
        )

    with interrupts.installed():
        outcome = run_workers(
            experiment,
            argv,
            workers=workers,
            root=root,
            storage=storage,
            threads=threads,
            on_line=lambda index, line: click.echo(f"[worker {index}] {line}", file=out),
            on_start=started,
            interrupted=interrupts.requested,
            on_data=lambda data: _print_data(data, out),
            warm_start=warm_start,
            on_queued=on_queued,
        )
    for index, how in outcome.failed_workers:
        click.echo(f"warning: worker {index} ended: {how}", err=True)
    return outcome.result, outcome.exit_code


def _print_data(data: PreparedData, out: TextIO) -> None:
    """The data's columns, once per run: type, blanks and (categorical) levels, and the rows left out."""
    from hpo.data.loading import rows_text

    columns = data.describe_columns()
    split = [f"{len(data.train_rows)} train", f"{len(data.val_rows)} validation"]
    if data.test_rows:
        split.append(f"{len(data.test_rows)} test")
    n_rows = len(data.train_rows) + len(data.val_rows) + len(data.test_rows)
    click.echo(
        f"Data {data.source}: {n_rows} rows ({', '.join(split)}), "
        f"{len(columns)} feature columns -> {data.n_features} network inputs",
        file=out,
    )
    width = max(len(c["name"]) for c in columns)
    for c in columns[:50]:
        levels = f", {c['levels']} levels" if c["levels"] is not None else ""
        click.echo(f"  {c['name']:<{width}}  {c['kind']:<11} {c['missing']} blank{levels}", file=out)
    if len(columns) > 50:
        click.echo(f"  ... and {len(columns) - 50} more columns", file=out)
    counts = data.class_counts()
    shown = {
        k: v for k, v in counts.items() if k in ("train", "validation", "test") and (v["negative"] + v["positive"])
    }
    click.echo(
        "  rows per class (negative/positive): "
        + ", ".join(f"{k} {v['negative']}/{v['positive']}" for k, v in shown.items())
        + (f"; {len(data.folds)} CV folds" if data.folds else "")
        + ("" if data.test_rows else "; no test split (data.test_fraction)"),
        file=out,
    )
    for note in data.notes:
        click.echo(f"note: {note}", file=out)
    warning = data.small_data_warning()
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    if data.dropped_rows:
        click.echo(
            f"note: left out {len(data.dropped_rows)} rows whose target is blank ({rows_text(data.dropped_rows)})",
            file=out,
        )


def _json_result(result: RunResult) -> dict[str, Any]:
    """``hpo run --json``: the test-split scores as ``hpo evaluate --json`` and ``hpo best --json`` show them, under
    ``test`` and ``ensemble_test`` (None when the run did not score them)."""
    payload = result.to_json()
    done = result.finalization
    entries = done.test.card_entries() if done is not None and done.test is not None else {}
    payload["test"] = entries.get("test")
    payload["ensemble_test"] = entries.get("ensemble_test")
    return payload


def _print_result(result: RunResult, experiment: Experiment, root: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_json_result(result), indent=2))
        return
    budget = f"/{result.budget}" if result.budget else ""
    if result.budget and result.finished > result.budget:
        budget = f" (more than this file's n_trials of {result.budget}: an earlier run asked for more)"
    click.echo(f"Study {result.study!r}: {result.finished}{budget} trials finished ({result.ran} in this run).")
    constraints = ", ".join(c.text for c in experiment.study.constraints)
    if result.front:
        click.echo(
            f"Pareto front: trials {list(result.front)}; weights in {root / result.study / 'best'}/trial_NNNN "
            f"(hpo best --study {result.study} lists them)"
        )
    elif result.front is not None or result.best_trial is None:
        nothing = f"so nothing is in {root / result.study / 'best'}"
        if constraints:
            click.echo(
                f"No feasible completed trial yet, {nothing} (constraints: {constraints}); run more trials "
                "(--n-trials) or loosen the constraints"
            )
        else:
            click.echo(f"No completed trial yet, {nothing}; run more trials (--n-trials)")
    if result.best_trial is not None:
        folds = experiment.data.cv_folds
        measured = f"mean of {folds} CV folds" if folds else "validation split"
        click.echo(
            f"Best {experiment.study.metric} = {result.best_value:.6g} ({measured}; trial {result.best_trial}); "
            + (
                f"weights in {result.best_dir}"
                if result.best_dir
                else f"no weights under {root / result.study}: "
                "they are on the host that ran that trial (or under another --root)"
            )
        )
    done = result.finalization
    if done is not None:
        if done.refitted_from is not None:
            click.echo(f"Refitted trial {done.refitted_from}'s configuration on the training and validation rows.")
        if done.ensemble:
            click.echo(f"Ensemble: the mean of trials {list(done.ensemble)} in {result.best_dir}/ensemble.")
        if done.test is not None:
            for name, scores in (("model", done.test.model), ("ensemble", done.test.ensemble)):
                if scores is not None:
                    click.echo(
                        f"Test split ({scores.n} held-out rows, never seen by the search), {name}: AUROC "
                        f"{scores.auroc:.4f} (95% CI {scores.auroc_low:.4f}-{scores.auroc_high:.4f}), log loss "
                        f"{scores.log_loss:.4f}, accuracy {scores.accuracy:.4f} at threshold {scores.threshold:.3g}"
                    )
    click.echo(
        f"See: hpo best --study {result.study} | tensorboard --logdir {root / result.study / 'tb'} | "
        f"optuna-dashboard {result.storage}"
    )
