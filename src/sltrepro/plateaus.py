"""Find plateaus of a loss curve and jumps of a rank curve, without hand-picked steps.

A loss curve logged at log-spaced steps is split into *flat runs* (consecutive points where
the loss falls by less than ``flat_tol`` per e-fold of time) and *drops* between them. A flat
run counts as a plateau only if it lasts, in linear time, at least ``min_ratio`` times as
long as the drop that ends it: on log-time axes every curve starts flat (nothing has
happened yet at t << 1/rate), and this rule keeps the long stalls of a small initialisation
while rejecting that start-up lag of a large one, whose "drop" (down to convergence) takes
much longer than the lag. Points after the loss falls below ``converged_rtol`` times its
initial value are ignored (there the curve ends, it does not plateau).
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class Plateau:
    """One plateau: indices into the logged curve (inclusive) and its loss level."""

    start: int
    end: int
    middle: int
    """Index of the point closest to the geometric middle of [time[start], time[end]]."""
    level: float
    """Median loss over the plateau."""


def _flat_runs(time: np.ndarray, loss: np.ndarray, flat_tol: float) -> list[list[int]]:
    """Maximal runs [i, j] of points whose consecutive relative drops per e-fold are small."""
    log_time = np.log(np.maximum(time, time[time > 0].min() / 2))
    drop = (loss[:-1] - loss[1:]) / loss[:-1]
    rate = drop / np.maximum(np.diff(log_time), 1e-12)
    runs, current = [], None
    for i, r in enumerate(rate):
        if r < flat_tol:
            current = [current[0] if current else i, i + 1]
        elif current:
            runs.append(current)
            current = None
    if current:
        runs.append(current)
    return runs


def _merge_small_drops(runs, loss, merge_tol) -> list[list[int]]:
    """Join neighbouring runs when the loss between them falls by less than ``merge_tol``."""
    merged = []
    for run in runs:
        if merged and (loss[merged[-1][1]] - loss[run[0]]) < merge_tol * loss[merged[-1][1]]:
            merged[-1][1] = run[1]
        else:
            merged.append(list(run))
    return merged


def find_plateaus(
    time,
    loss,
    *,
    flat_tol: float = 0.05,
    merge_tol: float = 0.05,
    min_ratio: float = 0.5,
    converged_rtol: float = 1e-4,
) -> list[Plateau]:
    """Plateaus of one loss curve.

    time: (T,) increasing, >= 0 (steps or lr * steps; only ratios and differences matter).
    loss: (T,) positive. Returns the plateaus in time order.
    """
    time = np.asarray(time, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if time.shape != loss.shape or time.ndim != 1 or len(time) < 3:
        raise ValueError(f"need 1-D time and loss of equal length >= 3, got {time.shape}")
    if np.any(np.diff(time) <= 0) or not np.all(np.isfinite(loss)):
        raise ValueError("time must increase strictly and the loss must be finite")
    below = np.nonzero(loss < converged_rtol * loss[0])[0]
    end = below[0] if len(below) else len(loss) - 1
    runs = _merge_small_drops(
        _flat_runs(time[: end + 1], loss[: end + 1], flat_tol), loss, merge_tol
    )
    plateaus = []
    for n, (i, j) in enumerate(runs):
        next_start = runs[n + 1][0] if n + 1 < len(runs) else end
        stall, fall = time[j] - time[i], time[next_start] - time[j]
        if stall < min_ratio * fall:
            continue
        centre = np.sqrt(max(time[i], time[1]) * time[j])
        middle = i + int(np.argmin(np.abs(time[i : j + 1] - centre)))
        plateaus.append(Plateau(i, j, middle, float(np.median(loss[i : j + 1]))))
    return plateaus


def rank_jumps(ranks) -> list[tuple[int, int, int]]:
    """(index, rank before, rank after) wherever a logged integer rank curve changes."""
    ranks = np.asarray(ranks)
    where = np.nonzero(np.diff(ranks))[0] + 1
    return [(int(i), int(ranks[i - 1]), int(ranks[i])) for i in where]
