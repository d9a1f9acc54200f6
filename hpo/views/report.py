"""A self-contained HTML report of a study (plotly.js inline, images embedded) plus PNGs of its main plots."""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.atomic import write_atomic
from hpo.best.folder import CARD_FILE, RELIABILITY_FILE, read_card, read_file_capped
from hpo.errors import StudyError, WeightsError
from hpo.study.access import load_study
from hpo.study.storage import redact_url
from hpo.views.figures import StudyFigure, build_figures, objective_names, write_png
from hpo.views.numbers import format_number

__all__ = ["ReportResult", "write_report"]

#: The reliability diagram of the best model, drawn next to its weights when available.


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote, which plots a study could not have yet (plot -> reason), and which files of
    ``best/`` exist but could not be read (file -> reason; the page says so in their place)."""

    study: str
    index: Path
    pngs: list[Path]
    plots: list[str]
    missing: dict[str, str]
    reliability: bool
    unreadable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What was written, as printed by ``hpo report --json``."""
        return {
            "study": self.study,
            "index": str(self.index),
            "pngs": [str(p) for p in self.pngs],
            "plots": self.plots,
            "missing": self.missing,
            "reliability_diagram": self.reliability,
            "unreadable": self.unreadable,
        }


def write_report(
    name: str, *, root: Path = Path("studies"), storage: str | None = None, out: Path | None = None
) -> ReportResult:
    """Write ``index.html`` and the PNGs of the main plots of study ``name`` into ``out``.

    The HTML opens without a network connection: plotly.js is inlined once and images are embedded. A study with
    too few trials for a plot gets a line saying why instead of that plot.

    Args:
        name: the study.
        root: the folder holding one folder per study.
        storage: a SQLAlchemy URL; default ``$HPO_STORAGE``, else ``sqlite:///<root>/<study>/study.db``.
        out: where to write; default ``<root>/<study>/report``.

    Raises:
        StudyError: no such study or storage, or ``out`` cannot be made or written (the message says why).
    """
    study, paths, url = load_study(name, root, storage)
    out = out if out is not None else paths.study_dir / "report"
    _check_writable(out)
    metric = objective_names(study)[0]
    figures = build_figures(study, metric)
    image, image_problem = _read_reliability(paths.best / RELIABILITY_FILE)
    card, card_problem = _read_card(paths.best)
    page = _page(study, redact_url(url), metric, figures, card, (image, image_problem), card_problem)
    pngs = []
    index = out / "index.html"
    try:
        for fig in figures:
            if fig.figure is not None and fig.spec.png:
                target = out / f"{fig.spec.key}.png"
                write_png(fig.spec, study, metric, target)
                pngs.append(target)
        write_atomic(index, page)
    except OSError as exc:
        raise _unwritable(out, exc) from None
    return ReportResult(
        name,
        index,
        pngs,
        [f.spec.key for f in figures if f.figure is not None],
        {f.spec.key: f.missing for f in figures if f.missing},
        image is not None,
        {
            file: problem
            for file, problem in ((CARD_FILE, card_problem), (RELIABILITY_FILE, image_problem))
            if problem is not None
        },
    )


def _check_writable(out: Path) -> None:
    """Make ``out`` and write a scratch file there, so that a place the report cannot go fails before any drawing."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise _unwritable(out, exc, name_file=False) from None


def _unwritable(out: Path, exc: OSError, name_file: bool = True) -> StudyError:
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if name_file and exc.filename and str(exc.filename) != str(out) else ""
    return StudyError(
        f"{out}: cannot write the report there ({reason}{where}); pass --out with a folder you can write, or free "
        "disk space"
    )


def _read_reliability(path: Path) -> tuple[bytes | None, str | None]:
    """The PNG of the best model's reliability diagram (None when ``best/`` has none), and why it could not be read
    if it is damaged or hostile (the page says so in its place: a picture is not worth failing the report)."""
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        return read_file_capped(path, "reliability diagram"), None
    except FileNotFoundError:  # a symlink to nothing
        return None, None
    except WeightsError as exc:
        return None, str(exc)


def _read_card(best: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``best/model.json`` (None if absent), and why it could not be read if it is damaged or hostile."""
    if not (best / CARD_FILE).exists() and not (best / CARD_FILE).is_symlink():
        return None, None
    try:
        return read_card(best), None
    except WeightsError as exc:
        return None, str(exc)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; } td, th { padding: 0.2rem 0.8rem; text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } .missing { color: #a33; } figure { margin: 0 0 2rem; }
figcaption { color: #555; } .plot { min-height: 450px; overflow-x: auto; } img { max-width: 100%; }
"""


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(format_number(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _best(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study (None: none yet, or a multi-objective study)."""
    if len(study.directions) > 1 or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    try:
        return study.best_trial
    except ValueError:  # every completed trial is infeasible
        return None


def _front_section(study: optuna.Study) -> list[str]:
    names = objective_names(study)
    front = sorted(study.best_trials, key=lambda t: t.number)
    goals = ", ".join(f"{d.name.lower()} {n}" for n, d in zip(names, study.directions, strict=True))
    parts = [
        f"<h2>Pareto front</h2><p>{html.escape(goals)}: {len(front)} Pareto-optimal feasible trial(s), each "
        "with its weights in <code>best/trial_NNNN/</code>.</p>"
    ]
    if not front:
        parts.append('<p class="missing">No feasible completed trial yet: run <code>hpo run</code>.</p>')
        return parts
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("trial", *names, "folder"))
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_number(v))}</td>" for v in (t.number, *t.values))
        + f"<td>best/trial_{t.number:04d}</td></tr>"
        for t in front
    )
    parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    return parts


def _page(
    study: optuna.Study,
    storage: str,
    metric: str,
    figures: list[StudyFigure],
    card: dict[str, Any] | None,
    reliability: tuple[bytes | None, str | None],
    card_problem: str | None = None,
) -> str:
    import plotly.io as pio
    import plotly.offline

    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    name = html.escape(study.study_name)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    goals = ", ".join(f"{d.name.lower()} {n}" for n, d in zip(objective_names(study), study.directions, strict=True))
    parts = [
        f"<h1>Study {name}</h1>",
        f'<p class="sub">{html.escape(goals)} &middot; trials: '
        f"{html.escape(', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none')} &middot; "
        f"{html.escape(storage)} &middot; written {now}</p>",
    ]
    best = _best(study)
    if len(study.directions) > 1:
        parts.extend(_front_section(study))
    elif best is None:
        parts.append("<h2>Best trial</h2>")
        parts.append('<p class="missing">No completed trial yet: run <code>hpo run</code> until one completes.</p>')
    else:
        parts.append("<h2>Best trial</h2>")
        folds = len(best.user_attrs.get("cv_values") or [])
        measured = f"mean of {folds} CV folds" if folds else "validation split"
        parts.append(_table([("trial", best.number), (f"{metric} ({measured}, used to select it)", best.value)]))
        params = best.user_attrs.get("params", best.params)
        parts.append("<h3>Parameters</h3>" + _table(sorted(params.items()), ("parameter", "value")))
        metrics = best.user_attrs.get("metrics", {})
        if metrics:
            parts.append(f"<h3>Metrics at the best epoch ({measured})</h3>" + _table(sorted(metrics.items())))
        if card is not None and card.get("trial") == best.number:
            for key, title in (("test", "the saved model"), ("ensemble_test", "the ensemble")):
                scores = card.get(key)
                if isinstance(scores, dict):
                    rows = [(name, value) for name, value in scores.items() if name != "split"]
                    parts.append(
                        f"<h3>Test split: {title} ({html.escape(str(scores.get('n')))} held-out rows, never seen by "
                        "the search; AUROC with a bootstrap 95% interval)</h3>" + _table(rows)
                    )
        if card_problem is not None:
            parts.append(f'<p class="missing">{html.escape(card_problem)}</p>')
        elif card is not None and card.get("trial") != best.number:
            parts.append(
                f'<p class="missing">best/model.json holds trial {html.escape(str(card.get("trial")))}: the best '
                "trial's weights were written on another host sharing this storage.</p>"
            )
    for fig in figures:
        parts.append(f'<section id="{fig.spec.key}"><h2>{html.escape(fig.spec.title)}</h2>')
        if fig.figure is None:
            parts.append(f'<p class="missing">Not drawn: {html.escape(fig.missing or "")}.</p></section>')
            continue
        div = pio.to_html(fig.figure, include_plotlyjs=False, full_html=False, div_id=f"plot-{fig.spec.key}")
        png = f' <a href="{fig.spec.key}.png">PNG</a>' if fig.spec.png else ""
        parts.append(
            f'<figure><div class="plot">{div}</div><figcaption>{html.escape(fig.spec.caption)}{png}</figcaption>'
            "</figure></section>"
        )
    parts.append('<section id="reliability"><h2>Reliability diagram</h2>')
    image, image_problem = reliability
    if image is not None:
        data = base64.b64encode(image).decode("ascii")
        parts.append(f'<img alt="Reliability diagram of the best model" src="data:image/png;base64,{data}">')
    elif image_problem is not None:
        parts.append(f'<p class="missing">Not available: {html.escape(image_problem)}</p>')
    else:
        parts.append('<p class="missing">Not available: best/reliability.png has not been written for this study.</p>')
    parts.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>hpo report: {name}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>'
        f"<body>{''.join(parts)}</body></html>\n"
    )
