"""Progress output of ``hpo run``: a bar on a terminal, one plain line per trial otherwise."""

from __future__ import annotations

import types
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hpo.search.run import TrialReport

__all__ = ["TrialProgress"]


class TrialProgress:
    """Show done/total, the best value so far and an ETA while a study runs."""

    def __init__(
        self, study: str, budget: int | None, metric: str, out: TextIO, objectives: tuple[str, ...] = ()
    ) -> None:
        self.study = study
        self.metric = metric
        self.objectives = objectives  # several: a multi-objective study, whose progress shows its Pareto front
        self.out = out
        self.console = Console(file=out)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.budget = budget

    def __enter__(self) -> TrialProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.study, total=self.budget, best="-")
        return self

    def update(self, report: TrialReport) -> None:
        best = "-" if report.best_value is None else f"{report.best_value:.5g} (#{report.best_trial})"
        if self._progress is not None and self._task is not None:
            if report.front is not None:
                best = f"Pareto front of {len(report.front)}"
            self._progress.update(self._task, completed=report.finished, total=report.budget, best=best)
            return
        if report.front is not None:
            best = f"front {list(report.front)}"
        value = f"{self.metric}={report.value:.6g}" if report.value is not None else f"{self.metric}=-"
        if report.state == "pruned" and report.value is not None:
            value += " (last reported, Optuna's value)"
        if len(self.objectives) > 1:
            shown = report.values or (None,) * len(self.objectives)
            value = " ".join(
                f"{m}={'-' if v is None else f'{v:.6g}'}" for m, v in zip(self.objectives, shown, strict=True)
            )
        budget = f"/{report.budget}" if report.budget else ""
        if report.budget and report.finished > report.budget:
            budget += f" (the study's total was lowered to {report.budget})"
        reason = f" ({report.reason})" if report.reason else ""
        if report.violated:
            reason += f" [infeasible: {', '.join(report.violated)}]"
        saved = " [new best, weights saved]" if report.promoted else ""
        if report.promoted and report.front is not None:
            saved = " [on the Pareto front, weights saved]"
        print(
            f"trial {report.number:4d} {report.state:8s} {value} best={best} "
            f"done={report.finished}{budget} {report.seconds:.1f}s{saved}{reason}",
            file=self.out,
            flush=True,
        )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()
