"""Choosing the SGLD step size: a sweep of step size x nbeta on one model.

Larger steps mix faster, but beyond a stable range the discretisation bias grows, MALA
acceptance falls and chains diverge. :func:`calibrate` runs :func:`sltrepro.llc.estimate_llc`
over a grid and picks the largest stable step at the nbeta closest to n / log n.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from torch import nn

from sltrepro.llc import LLCDivergenceError, default_nbeta, estimate_llc


@dataclass
class CalibrationResult:
    """The outcome of :func:`calibrate`: one table row per (nbeta, step_size)."""

    table: pd.DataFrame
    """Columns: nbeta, step_size, llc_mean, llc_std, mala_acceptance, diverged_chains,
    trace_drift, healthy (the estimator's verdict), stable."""
    best_step_size: float | None
    """Largest stable step size at ``best_nbeta`` (None if nothing was stable)."""
    best_nbeta: float
    """The grid nbeta closest (in log) to n / log n."""


COLUMNS = ("llc_mean", "llc_std", "mala_acceptance", "diverged_chains", "trace_drift", "healthy")


def calibrate(
    model: nn.Module,
    loss_fn: Callable,
    data,
    *,
    step_sizes: Sequence[float],
    nbetas: Sequence[float] | None = None,
    min_acceptance: float = 0.8,
    max_drift: float = 0.25,
    verbose: bool = False,
    **kwargs,
) -> CalibrationResult:
    """Sweep step size x nbeta, recording the LLC, its spread, MALA acceptance and drift.

    A setting is *stable* when no chain diverged, the estimate is positive, the mean MALA
    acceptance is at least ``min_acceptance`` and the trace drift is at most ``max_drift``.
    The pick is the largest stable step size at the nbeta closest to n/log n. A setting
    whose every chain diverged is recorded from the estimator's own all-NaN result.
    ``kwargs`` go to :func:`estimate_llc` (chains, draws, batch, seed...).
    """
    n = data[0].shape[0]
    nbetas = [default_nbeta(n)] if nbetas is None else list(nbetas)
    rows = []
    for nb in nbetas:
        for eps in sorted(step_sizes):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    res = estimate_llc(
                        model, loss_fn, data, step_size=eps, nbeta=nb, verbose=verbose, **kwargs
                    )
                except LLCDivergenceError as err:
                    res = err.result
            summary = res.summary_row()
            row = {"nbeta": float(nb), "step_size": float(eps)}
            row.update({k: summary[k] for k in COLUMNS})
            row["stable"] = bool(
                row["diverged_chains"] == 0
                and res.llc_mean > 0
                and row["mala_acceptance"] >= min_acceptance
                and row["trace_drift"] <= max_drift
            )
            rows.append(row)
    table = pd.DataFrame(rows)
    best_nbeta = min(nbetas, key=lambda nb: abs(math.log(nb / default_nbeta(n))))
    ok = table[(table["nbeta"] == float(best_nbeta)) & table["stable"]]
    best = float(ok["step_size"].max()) if len(ok) else None
    return CalibrationResult(table=table, best_step_size=best, best_nbeta=float(best_nbeta))
