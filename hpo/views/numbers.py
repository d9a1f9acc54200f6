"""How every view writes a number: six significant digits, and ``nan``/``inf`` as words."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_number"]


def format_number(value: Any) -> str:
    """``0.987654321`` -> ``0.987654``; anything that is not a finite float is shown as ``str(value)``."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)
