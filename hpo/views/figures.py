"""The plots of a study report (``optuna.visualization``), each with the reason when a study cannot have it yet."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["PARETO_PLOT", "PLOTS", "PlotSpec", "StudyFigure", "build_figures", "plots_for", "write_png"]

#: Seed of the importance evaluator, so that a report of the same study always shows the same importances.
IMPORTANCE_SEED = 0


@dataclass(frozen=True)
class PlotSpec:
    """One plot of the report: what it shows, what it needs, and whether a PNG of it is written for slides."""

    key: str
    title: str
    caption: str
    needs: Callable[[optuna.Study], str | None]
    png: bool


@dataclass(frozen=True)
class StudyFigure:
    """A plot that could be drawn (``figure``), or the reason it could not (``missing``)."""

    spec: PlotSpec
    figure: go.Figure | None
    missing: str | None


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _needs_complete(count: int) -> Callable[[optuna.Study], str | None]:
    def check(study: optuna.Study) -> str | None:
        done = _complete(study)
        if done >= count:
            return None
        return (
            f"needs at least {count} completed trial{'s' if count > 1 else ''}, the study has {done}; "
            "run more trials with `hpo run`"
        )

    return check


def _needs_curves(study: optuna.Study) -> str | None:
    if len(study.directions) > 1:
        return (
            "Optuna records no per-epoch values for multi-objective trials (they are not pruned); the learning curves "
            "are in TensorBoard (`hpo tensorboard`)"
        )
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        return None
    return "no trial has reported a validation value yet; run `hpo run` until one trial has trained an epoch"


def _needs_varied_params(study: optuna.Study) -> str | None:
    reason = _needs_complete(2)(study)
    if reason:
        return reason
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    shared = set.intersection(*(set(t.distributions) for t in trials))
    if not shared:
        return "the completed trials share no searched parameter, so their importance cannot be compared"
    if all(len({repr(t.params[name]) for t in trials}) < 2 for name in shared):
        return "every completed trial has the same parameters so far, so their importance cannot be compared"
    if len({tuple(t.values or ()) for t in trials}) < 2:
        return "every completed trial has the same value so far, so no parameter explains a difference"
    return None


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec(
        "optimization_history",
        "Optimisation history",
        "The value of every completed trial, and the best value so far.",
        _needs_complete(1),
        True,
    ),
    PlotSpec(
        "intermediate_values",
        "Learning curves",
        "The validation metric each trial reported per epoch (pruned trials stop early).",
        _needs_curves,
        True,
    ),
    PlotSpec(
        "param_importances",
        "Parameter importances",
        "How much of the variation in the metric each parameter explains (fANOVA over the completed trials).",
        _needs_varied_params,
        True,
    ),
    PlotSpec(
        "parallel_coordinate",
        "Parallel coordinates",
        "Each line is a completed trial: its parameters and its value.",
        _needs_complete(1),
        True,
    ),
    PlotSpec(
        "slice",
        "Slice plots",
        "The value of each completed trial against each parameter.",
        _needs_complete(1),
        False,
    ),
)


def _needs_pareto(study: optuna.Study) -> str | None:
    if len(study.directions) not in (2, 3):
        return f"a Pareto front plot shows 2 or 3 objectives, the study has {len(study.directions)}"
    return _needs_complete(1)(study)


#: The plot of a multi-objective study's Pareto front (infeasible trials in grey).
PARETO_PLOT = PlotSpec(
    "pareto_front",
    "Pareto front",
    "Every completed trial by its objective values; the Pareto-optimal feasible trials are highlighted (their "
    "weights are in best/trial_NNNN), infeasible trials are grey.",
    _needs_pareto,
    True,
)


def plots_for(study: optuna.Study) -> tuple[PlotSpec, ...]:
    """The plots of a study's report: :data:`PLOTS`, and :data:`PARETO_PLOT` for a multi-objective study."""
    return (*PLOTS, PARETO_PLOT) if len(study.directions) > 1 else PLOTS


def objective_names(study: optuna.Study) -> list[str]:
    """The metric of each objective, as ``hpo run`` recorded it (``objective i`` for a study made elsewhere)."""
    names = study.user_attrs.get("objectives")
    if isinstance(names, list) and len(names) == len(study.directions):
        return [str(n) for n in names]
    if len(study.directions) == 1:
        return [str(study.user_attrs.get("metric") or "Objective Value")]
    return [f"objective {i}" for i in range(len(study.directions))]


def _first_value(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.values[0])


def _plot_kwargs(key: str, study: optuna.Study, target_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if key in ("optimization_history", "param_importances", "parallel_coordinate", "slice"):
        kwargs["target_name"] = target_name
        if len(study.directions) > 1:
            kwargs["target"] = _first_value  # a multi-objective study: these plots show the first objective
    if key == "pareto_front":
        kwargs["target_names"] = objective_names(study)
    if key == "param_importances":
        kwargs["evaluator"] = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    return kwargs


def build_figures(study: optuna.Study, target_name: str) -> list[StudyFigure]:
    """Every plot of :data:`PLOTS` that ``study`` has the trials for, and why the others are missing."""
    import optuna.visualization as vis

    figures = []
    for spec in plots_for(study):
        missing = spec.needs(study)
        if missing:
            figures.append(StudyFigure(spec, None, missing))
            continue
        plot = getattr(vis, f"plot_{spec.key}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            figure = plot(study, **_plot_kwargs(spec.key, study, target_name))
        figure.update_layout(title=spec.title, template="plotly_white")
        figures.append(StudyFigure(spec, figure, None))
    return figures


def write_png(spec: PlotSpec, study: optuna.Study, target_name: str, path: Path) -> None:
    """Draw ``spec`` with ``optuna.visualization.matplotlib`` into a PNG file (no browser needed)."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as mvis

    plot = getattr(mvis, f"plot_{spec.key}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A parameter with one value so far makes a flat axis; matplotlib widens it and says so.
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        result = plot(study, **_plot_kwargs(spec.key, study, target_name))
    axes = result.flat[0] if hasattr(result, "flat") else result
    figure = axes.get_figure()
    try:
        figure.set_size_inches(10, 5.6)
        axes.set_title(spec.title)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
