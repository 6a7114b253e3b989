"""Convergence diagnostics of an LLC estimate and the verdict built on them.

Everything here reads the per-chain, per-draw trace of the LLC,

    t[c, d] = nbeta * (L(w_cd) - L(w*))        (C chains x D draws),

whose grand mean is the estimate. R-hat, ESS and the Monte Carlo standard error come from
ArviZ (rank-normalised split R-hat and bulk/tail ESS of Vehtari et al. 2021, arXiv
1903.08008); the trace drift and the equilibration budgets are ours. :func:`assess`
turns them into a verdict with one reason per failed check; the thresholds, and the
known-lambda runs that justify them, are in ``papers/llc_estimator/README.md``
("Diagnostics and the health verdict").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

# ArviZ needs at least this many draws per chain for split R-hat / ESS
MIN_DRAWS = 4


def _arviz():
    # imported on first use: ArviZ pulls in xarray and takes seconds to import, which
    # every Snakemake job that only trains a model would otherwise pay
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its notice of the 1.x refactor
        import arviz

    return arviz


def chain_statistics(trace: np.ndarray) -> dict[str, float]:
    """R-hat, bulk/tail ESS and MCSE of the mean of a (C, D) trace.

    ``rhat``: rank-normalised split R-hat (~1 when the chains agree with each other and
    with themselves over time; a chain still drifting or stuck elsewhere pushes it up; a
    single chain is split into its two halves first).
    ``ess_bulk`` / ``ess_tail``: effective sample sizes of the bulk and of the 5% / 95%
    quantiles, summed over chains. ``mcse``: Monte Carlo standard error of the grand mean
    (the LLC when ``trace`` is the LLC trace), in the units of the trace. NaN for every
    entry when there are fewer than ``MIN_DRAWS`` draws or a non-finite value; R-hat is
    also NaN for a constant trace.
    """
    trace = np.asarray(trace, dtype=float)
    nan = {"rhat": math.nan, "ess_bulk": math.nan, "ess_tail": math.nan, "mcse": math.nan}
    if (
        trace.ndim != 2
        or trace.shape[0] < 1
        or trace.shape[1] < MIN_DRAWS * (1 + (len(trace) == 1))
    ):
        return nan
    if not np.isfinite(trace).all():
        return nan
    if np.ptp(trace) == 0:  # ArviZ returns a meaningless ESS (= C*D) for a constant trace
        return {**nan, "mcse": 0.0}
    az = _arviz()
    # ArviZ's R-hat needs two chains: a single chain is compared across its two halves
    halves = trace[:, : trace.shape[1] // 2 * 2].reshape(2, -1) if len(trace) == 1 else trace
    return {
        "rhat": float(az.rhat(halves, method="rank")),
        "ess_bulk": float(az.ess(trace, method="bulk")),
        "ess_tail": float(az.ess(trace, method="tail")),
        "mcse": float(az.mcse(trace, method="mean")),
    }


def trace_drift(trace: np.ndarray, llc_mean: float, llc_std: float) -> float:
    """|second-half mean - first-half mean| of the pooled (C, D) LLC trace, relative to
    max(|llc_mean|, llc_std): a chain still drifting (not yet equilibrated, or slowly
    running away) scores high. NaN with fewer than 2 draws or no chain."""
    trace = np.asarray(trace, dtype=float)
    half = trace.shape[1] // 2 if trace.ndim == 2 else 0
    if half == 0 or not len(trace):
        return math.nan
    gap = abs(trace[:, half:].mean() - trace[:, :half].mean())
    return float(gap / max(abs(llc_mean), llc_std, 1e-12))


@dataclass(frozen=True)
class HealthThresholds:
    """The checks an LLC estimate must pass to be called healthy.

    Defaults and the runs behind them: ``papers/llc_estimator/README.md``, section
    "Diagnostics and the health verdict".
    """

    max_rhat: float = 1.1
    """Rank-normalised split R-hat at most this (Gelman-Rubin's classic 1.1; Vehtari et al.
    recommend 1.01 for final posterior summaries, which a few hundred LLC draws rarely
    reach even on known cases that land on the truth)."""
    min_ess_bulk: float = 100.0
    """Bulk ESS (all chains together) at least this: MCSE <= std / 10."""
    min_ess_tail: float = 50.0
    """Tail ESS at least this (Vehtari et al.'s reliability floor for quantiles is ~100;
    the LLC is a mean, so the tails matter less than the bulk)."""
    max_rel_mcse: float = 0.1
    """Monte Carlo standard error at most this fraction of |llc_mean|. This is the check
    that catches minibatch readings without pairing: their draws are nearly independent
    (R-hat ~1, large ESS) but so noisy that the mean is not resolved."""
    max_drift: float = 0.25
    """:func:`trace_drift` at most this (the calibration sweep's stability rule)."""
    min_loss_budget: float = 10.0
    """nbeta * eps * T at least this (T = burn-in + draws): SGLD relaxes a direction of
    L-curvature h at rate eps * nbeta * h / 2 per step, so 10 gives 5 e-folds at h = 1.
    Checked for plain SGLD only (RMSprop-SGLD and SGNHT rescale the step)."""
    min_exact_acceptance: float = 0.8
    """Mean MALA acceptance at least this when it is exact (full-batch gradients): the
    discretisation bias grows as acceptance falls (a DLN [5,3,3,5] at eps 1e-3 accepted
    0.73-0.77 and read 16-52% high). Furman & Lau tuned to 0.86-0.93; the calibration sweep
    uses the same 0.8. A minibatch acceptance is only a proxy and is reported, not checked."""


DEFAULT_THRESHOLDS = HealthThresholds()


def assess(
    stats: dict,
    *,
    num_chains: int,
    diverged_chains: int,
    sampler: str,
    mala_exact: bool,
    unpaired_minibatches: bool = False,
    thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
) -> list[str]:
    """The reasons an estimate is unhealthy (empty when it is healthy).

    ``stats`` holds ``llc_mean``, ``rhat``, ``ess_bulk``, ``ess_tail``, ``mcse``,
    ``trace_drift``, ``loss_budget`` and ``mala_acceptance`` as computed for
    :class:`sltrepro.llc.LLCResult`; ``mala_exact`` says the gradients and losses are
    full-batch, ``unpaired_minibatches`` that minibatch losses were read without pairing.
    Each reason names the value, the threshold and what to change.
    """
    t = thresholds
    reasons = []
    if diverged_chains:
        reasons.append(
            f"{diverged_chains} of {num_chains} chains diverged: lower step_size or raise "
            "localization"
        )
        if diverged_chains == num_chains:
            return reasons
    rhat, bulk, tail = stats["rhat"], stats["ess_bulk"], stats["ess_tail"]
    if not (rhat <= t.max_rhat):  # NaN fails
        reasons.append(
            f"R-hat {rhat:.3g} > {t.max_rhat:g}: chains disagree or still drift; add "
            "num_burnin / num_draws, or raise step_size if the budget is small"
        )
    if not (bulk >= t.min_ess_bulk):
        reasons.append(f"bulk ESS {bulk:.3g} < {t.min_ess_bulk:g}: add num_draws or num_chains")
    if not (tail >= t.min_ess_tail):
        reasons.append(f"tail ESS {tail:.3g} < {t.min_ess_tail:g}: add num_draws or num_chains")
    mcse, mean = stats["mcse"], stats["llc_mean"]
    if not (mcse <= t.max_rel_mcse * abs(mean)):
        fix = "read minibatches paired (paired=True)" if unpaired_minibatches else "add num_chains"
        reasons.append(
            f"MCSE {mcse:.3g} > {t.max_rel_mcse:g} x |LLC| ({abs(mean):.3g}): the mean is not "
            f"resolved; add num_draws, or {fix}"
        )
    drift = stats["trace_drift"]
    if not (drift <= t.max_drift):
        reasons.append(
            f"trace drift {drift:.3g} > {t.max_drift:g}: the second half of the draws "
            "differs from the first; add num_burnin"
        )
    if sampler == "sgld" and not (stats["loss_budget"] >= t.min_loss_budget):
        reasons.append(
            f"equilibration budget nbeta*eps*T = {stats['loss_budget']:.3g} < "
            f"{t.min_loss_budget:g}: raise step_size or num_burnin"
        )
    acc = stats["mala_acceptance"]
    if mala_exact and math.isfinite(acc) and acc < t.min_exact_acceptance:
        reasons.append(
            f"MALA acceptance {acc:.2f} < {t.min_exact_acceptance:g}: the step is too "
            "large for the posterior's curvature; lower step_size (or nbeta)"
        )
    return reasons
