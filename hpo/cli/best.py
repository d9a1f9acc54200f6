"""``hpo best``: show the best trial of a study (or the Pareto front of a multi-objective one) and where its weights
are."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hpo.cli import EXIT_CODES_HELP, handles_errors, main, quiet_libraries, root_option, storage_option
from hpo.views.numbers import format_number

if TYPE_CHECKING:
    from hpo.views.best_summary import FrontSummary


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--study", "study_name", default="default", show_default=True, help="Study name.")
@storage_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handles_errors
def best(study_name: str, storage: str | None, root: Path, as_json: bool) -> None:
    """Show the best trial of a study (from its storage) and where its weights are.

    For a multi-objective study: a table of the Pareto front (feasible trials only), one row per trial with each
    objective, its feasibility and the folder holding its weights (best/trial_NNNN).

    \b
    Example:
      hpo best --study default --json
      hpo best --study pareto
    """
    from hpo.paths import validate_study_name
    from hpo.views.best_summary import FrontSummary, describe_study, read_saved_inference

    quiet_libraries()
    summary = describe_study(validate_study_name(study_name, "--study"), root=root, storage=storage)
    if isinstance(summary, FrontSummary):
        _print_front(summary, as_json)
        return
    saved = read_saved_inference(summary.weights_dir) if summary.weights_dir is not None else None
    if as_json:
        click.echo(json.dumps({**summary.to_json(), "inference": saved.to_json() if saved else None}, indent=2))
        return
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
    click.echo(f"Study:   {summary.study} ({summary.direction} {summary.metric}; trials: {states})")
    click.echo(f"Storage: {summary.storage}")
    click.echo(f"Best:    trial {summary.trial}, value {summary.value!r} ({summary.measured_on}, used to select it)")
    if summary.constraints:
        click.echo("Constraints (met by the best trial, which is the best feasible one):")
        for text, violation in summary.constraints.items():
            click.echo(f"  {text}: {'met' if violation <= 0 else 'NOT met'}, margin {-violation:.6g}")
    click.echo("Params:")
    for key, value in summary.params.items():
        click.echo(f"  {key}: {value}")
    if summary.metrics:
        click.echo(f"Metrics at the best epoch ({summary.measured_on}):")
        for key, value in summary.metrics.items():
            click.echo(f"  {key}: {format_number(value)}")
    if summary.weights_status == "ok":
        click.echo(f"Weights: {summary.weights_dir}/model.pt (+ model.json)")
    elif (
        summary.weights_status == "stale"
        and summary.worker
        and summary.worker.rsplit(":", 1)[0] != socket.gethostname()
    ):
        click.echo(
            f"Weights: {summary.weights_dir} holds an older trial; the best trial's weights were written by "
            f"{_host(summary.worker)} sharing this storage."
        )
    elif summary.weights_status == "stale":
        click.echo(
            f"Weights: {summary.weights_dir} holds an older trial: a run on this host was stopped between recording "
            "the best trial and saving its weights (or best/ could not be written then); rerun the same `hpo run` "
            "command to repair best/."
        )
    else:
        click.echo(f"Weights: none under this root; they live on {_host(summary.worker)}, which ran the best trial.")
    if saved is not None and saved.threshold is not None:
        t = saved.threshold
        missed = "" if t.reached else f" (target {t.target:g} not reached on the validation split)"
        click.echo(
            f"Threshold: {t.threshold:.4g} ({t.rule}{'' if t.target is None else f' {t.target:g}'}): precision "
            f"{t.precision:.3f}, recall {t.recall:.3f}, F1 {t.f1:.3f} on the validation split{missed}"
        )
    if summary.refit is not None:
        r = summary.refit
        click.echo(
            f"Refit:   trial {r['from_trial']}'s configuration retrained on {r['rows']} training + validation rows for "
            f"{r['epochs']} epochs; that is the model in best/"
        )
    if summary.ensemble is not None:
        click.echo(f"Ensemble: mean of trials {summary.ensemble['members']} in {summary.weights_dir}/ensemble")
    for name, test in (("model", summary.test), ("ensemble", summary.ensemble_test)):
        if test is not None:
            click.echo(
                f"Test ({name}, {test['n']} held-out rows): AUROC {test['auroc']:.4f} (95% CI "
                f"{test['auroc_low']:.4f}-{test['auroc_high']:.4f}), log loss {test['log_loss']:.4f}, Brier "
                f"{test['brier']:.4f}, accuracy {test['accuracy']:.4f}, precision {test['precision']:.4f}, recall "
                f"{test['recall']:.4f} at threshold {format_number(test['threshold'])}"  # as hpo run and evaluate
            )
    if saved is not None and saved.calibration is not None:
        c = saved.calibration
        scaling = f"temperature {saved.temperature:.4g}; " if saved.temperature != 1.0 else ""
        click.echo(
            f"Calibration: {scaling}Brier {c['brier']:.4f}, log loss {c['log_loss']:.4f}, ECE {c['ece']:.4f} "
            f"(see {summary.weights_dir}/calibration.json, reliability.png)"
        )


def _print_front(summary: FrontSummary, as_json: bool) -> None:
    from hpo.cli._table import print_table

    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
    goals = ", ".join(f"{d} {m}" for m, d in summary.objectives)
    click.echo(f"Study:   {summary.study} ({goals}; trials: {states})")
    click.echo(f"Storage: {summary.storage}")
    if summary.constraints:
        click.echo(f"Constraints: {', '.join(summary.constraints)}")
    if not summary.rows:
        click.echo("Pareto front: empty (no feasible completed trial yet); run `hpo run` until one completes.")
        return
    click.echo(f"Pareto front: {len(summary.rows)} trial(s)")
    header = ("trial", *(m for m, _ in summary.objectives), "feasible", "folder")
    rows = [
        (
            str(row.trial),
            *(format_number(row.values[m]) for m, _ in summary.objectives),
            "yes" if row.feasible else "no",
            str(row.folder) if row.folder else _elsewhere(row.worker),
        )
        for row in summary.rows
    ]
    print_table(header, rows)
    click.echo(
        "Load one: hpo.load_best(study, trial=N), or a rule such as maximize='val/auroc', where='model/params <= 50000'"
    )


def _host(worker: str | None) -> str:
    return f"host {worker.rsplit(':', 1)[0]!r}" if worker else "the host"


def _elsewhere(worker: str | None) -> str:
    """Where a front trial's missing folder is: another host sharing the storage, or deleted from this one."""
    if worker and worker.rsplit(":", 1)[0] == socket.gethostname():
        return "missing: written on this host, then deleted (or under another --root)"
    return f"not here: on {_host(worker)}"
