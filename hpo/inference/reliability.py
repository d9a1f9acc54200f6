"""Draw the reliability diagram of ``best/calibration.json`` as a PNG (``best/reliability.png``).

It is drawn with Pillow (already installed with matplotlib) rather than matplotlib: a new best trial writes this
picture while the study waits, and matplotlib's layout and text machinery take about 300 ms for it where Pillow takes
a few milliseconds. The picture is simple enough not to need more: two panels sharing the probability axis.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from hpo.inference.calibration import ProbabilityQuality

__all__ = ["reliability_png"]

_WIDTH, _HEIGHT = 550, 650
_LEFT, _RIGHT = 70, 20  # plot area margins (pixels)
_TOP_PANEL = (62, 430)  # y range of the reliability panel
_BOTTOM_PANEL = (465, 590)  # y range of the histogram panel
_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_BLUE, _ORANGE, _GREY, _GRID = (31, 119, 180), (255, 127, 14), (150, 150, 150), (225, 225, 225)


def reliability_png(quality: ProbabilityQuality, title: str, uncalibrated: ProbabilityQuality | None = None) -> bytes:
    """A PNG of the fraction of positives against the mean predicted probability, bin by bin.

    Args:
        quality: the probabilities the saved model predicts (after temperature scaling, if kept).
        title: the first line of the title (e.g. the study and trial).
        uncalibrated: drawn too, dashed, when temperature scaling changed the probabilities.
    """
    image = Image.new("RGB", (_WIDTH, _HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    x0, x1 = _LEFT, _WIDTH - _RIGHT

    def px(p: float) -> float:
        return x0 + p * (x1 - x0)

    def py(value: float, panel: tuple[int, int], high: float = 1.0) -> float:
        return panel[1] - value / high * (panel[1] - panel[0])

    _centred(draw, title, 8, font)
    subtitle = f"Brier {quality.brier:.4f}, log loss {quality.log_loss:.4f}, n = {quality.n}"
    _centred(draw, subtitle, 28, small)

    # Reliability panel: grid, ticks, the diagonal and one curve per set of probabilities.
    top = _TOP_PANEL
    for t in _TICKS:
        draw.line([(px(t), top[0]), (px(t), top[1])], fill=_GRID)
        draw.line([(x0, py(t, top)), (x1, py(t, top))], fill=_GRID)
        draw.text((x0 - 6, py(t, top)), f"{t:.1f}", fill="black", font=small, anchor="rm")
    _dashed(draw, [(px(0), py(0, top)), (px(1), py(1, top))], _GREY, dash=3)
    curves = [(quality, "model", _BLUE, False)]
    if uncalibrated is not None:
        curves.append((uncalibrated, "before temperature scaling", _ORANGE, True))
    for curve, _, colour, dashed in curves:
        points = [(px(b.mean_probability), py(b.fraction_positive, top)) for b in curve.bins]
        if dashed:
            _dashed(draw, points, colour, dash=8)
        elif len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.rectangle([x0, top[0], x1, top[1]], outline="black")
    _vertical(image, "fraction of positives", 14, (top[0] + top[1]) // 2, small)
    legend = [("perfectly calibrated", _GREY)] + [(f"{lbl} (ECE {c.ece:.3f})", col) for c, lbl, col, _ in curves]
    for i, (label, colour) in enumerate(legend):
        y = top[0] + 14 + 17 * i
        draw.line([(x0 + 10, y), (x0 + 34, y)], fill=colour, width=2)
        draw.text((x0 + 40, y), label, fill="black", font=small, anchor="lm")

    # Histogram panel: rows per bin.
    bottom = _BOTTOM_PANEL
    highest = max((b.count for b in quality.bins), default=1) or 1
    for b in quality.bins:
        draw.rectangle([px(b.low) + 1, py(b.count, bottom, highest), px(b.high) - 1, bottom[1]], fill=_GREY)
    draw.rectangle([x0, bottom[0], x1, bottom[1]], outline="black")
    for value in (0, highest):
        draw.text((x0 - 6, py(value, bottom, highest)), str(value), fill="black", font=small, anchor="rm")
    for t in _TICKS:
        draw.line([(px(t), bottom[1]), (px(t), bottom[1] + 4)], fill="black")
        draw.text((px(t), bottom[1] + 6), f"{t:.1f}", fill="black", font=small, anchor="mt")
    _vertical(image, "rows", 14, (bottom[0] + bottom[1]) // 2, small)
    _centred(draw, "mean predicted probability (validation split, 15 bins)", bottom[1] + 28, small)

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


def _centred(draw: ImageDraw.ImageDraw, text: str, y: float, font: ImageFont.FreeTypeFont) -> None:
    draw.text(((_WIDTH + _LEFT - _RIGHT) / 2, y), text, fill="black", font=font, anchor="ma")


def _vertical(image: Image.Image, text: str, x: int, y_centre: int, font: ImageFont.FreeTypeFont) -> None:
    """Draw ``text`` rotated by 90 degrees, centred on (x, y_centre)."""
    left, top, right, bottom = (round(v) for v in font.getbbox(text))
    label = Image.new("RGB", (right - left + 2, bottom - top + 2), "white")
    ImageDraw.Draw(label).text((1 - left, 1 - top), text, fill="black", font=font)
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (x - rotated.width // 2, y_centre - rotated.height // 2))


def _dashed(
    draw: ImageDraw.ImageDraw, points: Sequence[tuple[float, float]], colour: tuple[int, int, int], dash: int
) -> None:
    """A dashed polyline: ``dash`` pixels drawn, ``dash`` pixels left out, along each segment."""
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            s, e = i / steps, min(1.0, (i + 1) / steps)
            draw.line([(ax + (bx - ax) * s, ay + (by - ay) * s), (ax + (bx - ax) * e, ay + (by - ay) * e)], fill=colour)
