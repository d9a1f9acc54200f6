"""Draw the reliability diagram of ``best/calibration.json`` as a PNG (``best/reliability.png``)."""

from __future__ import annotations

import io

from hpo.calibration import ProbabilityQuality

__all__ = ["reliability_png"]


def reliability_png(quality: ProbabilityQuality, title: str, uncalibrated: ProbabilityQuality | None = None) -> bytes:
    """A PNG of the fraction of positives against the mean predicted probability, bin by bin.

    Args:
        quality: the probabilities the saved model predicts (after temperature scaling, if kept).
        title: the first line of the title (e.g. the study and trial).
        uncalibrated: drawn too, dashed, when temperature scaling changed the probabilities.
    """
    # matplotlib is imported here, and without pyplot, so that only promotion pays for it and no global state changes.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="0.6", linewidth=1, linestyle=":", label="perfectly calibrated")
    curves = [(quality, "model", "-")]
    if uncalibrated is not None:
        curves.append((uncalibrated, "before temperature scaling", "--"))
    for curve, label, style in curves:
        xs = [b.mean_probability for b in curve.bins]
        ys = [b.fraction_positive for b in curve.bins]
        top.plot(xs, ys, style, marker="o", markersize=4, label=f"{label} (ECE {curve.ece:.3f})")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("fraction of positives")
    top.set_title(f"{title}\nBrier {quality.brier:.4f}, log loss {quality.log_loss:.4f}, n = {quality.n}", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    width = quality.bins[0].high - quality.bins[0].low if quality.bins else 1.0
    bottom.bar([b.low for b in quality.bins], [b.count for b in quality.bins], width=width, align="edge", color="0.5")
    bottom.set_xlabel("mean predicted probability (validation split, 15 bins)")
    bottom.set_ylabel("rows")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
