from __future__ import annotations

import io

import numpy as np
from PIL import Image

from hpo.inference.calibration import probability_quality
from hpo.inference.reliability import reliability_png

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def _pixels(image: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    """(x, y) of every pixel of exactly ``colour``."""
    ys, xs = np.nonzero(np.all(np.asarray(image) == colour, axis=-1))
    return np.column_stack([xs, ys])


def test_model_curve_is_drawn_where_its_bins_are() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(3000)
    y = (rng.random(3000) < p).astype(float)  # well calibrated: the curve follows the diagonal
    image = _image(reliability_png(probability_quality(p, y), "study 's', trial 3"))
    assert image.size == (550, 650)
    blue = _pixels(image, BLUE)
    assert len(blue) > 200 and len(_pixels(image, ORANGE)) == 0
    # In the top panel (x from 70 to 530, y from 430 up to 62), the points lie near the diagonal.
    curve = blue[(blue[:, 1] > 62) & (blue[:, 1] < 430) & (blue[:, 0] > 90)]  # leave out the legend's line
    prob = (curve[:, 0] - 70) / 460
    frac = (430 - curve[:, 1]) / 368
    assert np.median(np.abs(prob - frac)) < 0.05


def test_uncalibrated_curve_is_added_only_when_given() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(float)
    over = probability_quality(np.clip(p * 1.4, 0, 1), y)
    image = _image(reliability_png(probability_quality(p, y), "t", over))
    assert len(_pixels(image, ORANGE)) > 50
