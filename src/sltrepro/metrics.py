"""The one writer of a paper's ``metrics.json``: a flat JSON object of numbers, booleans,
nulls, and text (the ``<stem>llc_health_reasons`` that a failing health gate quotes).

Claims (:mod:`sltrepro.claims`) and drift detection (:mod:`sltrepro.regress`) read these
files, so every paper writes them the same way: keys sorted, two-space indentation, numpy
scalars and fractions as plain numbers, and NaN or infinity as ``null`` (JSON has no NaN;
claims read ``null`` as "missing", so such a metric fails its claim, as NaN did).
"""

import json
import math
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path

import numpy as np


def plain(key: str, value):
    """``value`` as ``None``, ``bool``, ``int``, finite ``float`` or ``str``; anything else (a
    list, a nested dict, an array: metrics.json is flat) is a ``TypeError`` naming ``key``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Fraction | Real):
        value = float(value)
        return value if math.isfinite(value) else None
    raise TypeError(
        f"metric {key!r} is {type(value).__name__} {value!r}: metrics.json is flat, "
        "with numbers, booleans, text or null only"
    )


def write(path: str | Path, metrics: dict) -> dict:
    """Write ``metrics`` to ``path`` as sorted, indented JSON; returns what was written.

    Validates everything before writing, so a bad value leaves no partial file behind.
    """
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
    bad = [key for key in metrics if not isinstance(key, str)]
    if bad:
        raise TypeError(f"metric names must be strings, got {bad!r}")
    clean = {key: plain(key, metrics[key]) for key in sorted(metrics)}
    text = json.dumps(clean, indent=2, allow_nan=False) + "\n"
    Path(path).write_text(text)
    return clean
