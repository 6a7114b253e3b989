"""Local learning coefficient (LLC) estimation with SGMCMC (Lau et al. 2023, arXiv 2308.12108).

The estimator is

    lambda_hat(w*) = nbeta * ( E_w[L_n(w)] - L_n(w*) ),

the expectation taken over the localised tempered posterior

    p(w) ∝ exp( -nbeta * L_n(w) - (gamma / 2) * ||w - w*||^2 ),

sampled by default with stochastic-gradient Langevin dynamics (SGLD):

    w <- w - (eps / 2) * ( nbeta * grad L_batch(w) + gamma * (w - w*) ) + N(0, eps * I).

``L_n`` is the average negative log-likelihood per sample (up to a constant); the caller's
``loss_fn`` must return exactly that, averaged over the minibatch it is given.

The pieces, one module each: the settings (:mod:`sltrepro.llc_settings`), how the chains'
losses are evaluated (:mod:`sltrepro.llc_forward`: all chains at once, chosen once), the
update kernels (:mod:`sltrepro.sgmcmc`: SGLD, RMSprop-SGLD, SGNHT, pure steps), the
diagnostics and health verdict (:mod:`sltrepro.llc_diagnostics`) and the step-size sweep
(:mod:`sltrepro.llc_calibration`). This module runs them: minibatches, losses and
gradients feed the kernel; traces, divergence and MALA observe every step; the result
carries the estimate with its evidence. :func:`estimate_llc_trajectory` runs the chains of
many checkpoints (an LLC curve over training) in one stacked tensor, each tethered to its
own w*, with the numbers of one :func:`estimate_llc` call per checkpoint.

The weight-refined LLC (Wang et al. 2024, arXiv 2410.02984) of a component V (one attention
head, say: a slice of several weight tensors) is the same estimator with the posterior taken
over V's coordinates alone, every other weight held at w*:

    p(v) ∝ exp( -nbeta * L_n(v, u*) - (gamma / 2) * ||v - v*||^2 ),
    lambda_hat(w*; V) = nbeta * ( E_v[L_n(v, u*)] - L_n(w*) ).

``restrict=`` (bool masks per named parameter) selects V: the chains carry V's coordinates
only, so drift, noise, localization, MALA and the dimension counts see nothing else, and the
model is evaluated at w* with V's coordinates replaced. The data-refined LLC needs nothing
new: pass the data subset as ``data``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sltrepro import llc_diagnostics as diagnostics
from sltrepro import sgmcmc
from sltrepro.device import resolve_device
from sltrepro.llc_forward import (
    CompiledLosses,
    FlatModel,
    check_data,
    check_loss,
    checkpoint_params,
    choose_forward,
    flat_full_loss,
    full_data_loss,
)
from sltrepro.llc_settings import SamplerSettings
from sltrepro.progress import progress

__all__ = [
    "LLCDivergenceError",
    "LLCResult",
    "ROW_FIELDS",
    "SamplerSettings",
    "default_nbeta",
    "estimate_llc",
    "estimate_llc_trajectory",
    "full_data_loss",
]


class LLCDivergenceError(RuntimeError):
    """Every chain of an LLC estimate diverged.

    ``result`` is the :class:`LLCResult` all the same (``llc_mean`` NaN, every chain
    flagged, ``healthy`` False): a sweep records ``err.result.summary_row()`` instead of
    inventing a row of its own. From :func:`estimate_llc_trajectory`, ``results`` holds
    every checkpoint's result (None from :func:`estimate_llc`).
    """

    def __init__(
        self,
        message: str,
        result: LLCResult | None = None,
        results: list[LLCResult] | None = None,
    ):
        super().__init__(message)
        self.result = result
        self.results = results


@dataclass
class LLCResult:
    """The outcome of :func:`estimate_llc` (or of one checkpoint of
    :func:`estimate_llc_trajectory`): the estimate, its traces and its evidence.

    Shapes use C = chains, D = draws (after burn-in), K = loss components (only when
    ``loss_fn`` returns a vector, e.g. one loss per token position). The diagnostics
    (``rhat`` ... ``mala_exact``) read the LLC trace nbeta * ``delta_trace`` of the chains
    that did not diverge; see :mod:`sltrepro.llc_diagnostics`.
    """

    llc_mean: float
    """Mean of ``llc_per_chain`` over the chains that did not diverge (NaN when all did)."""
    llc_std: float
    """Standard deviation (ddof=1; 0 for a single chain) over the same chains."""
    llc_per_chain: np.ndarray
    """(C,) nbeta * mean_draws(delta_trace); NaN for diverged chains."""
    init_loss: float
    """Full-data loss L_n(w*) (mean over components when the loss is a vector)."""
    loss_trace: np.ndarray
    """(C, D) the minibatch loss each chain read at each draw (its gradient's loss)."""
    delta_trace: np.ndarray
    """(C, D) per-draw estimate of L_n(w) - L_n(w*): loss minus ``init_loss``, or, when
    paired, loss minus the loss of w* on the same minibatch."""
    mala_acceptance: np.ndarray
    """(C,) mean Metropolis-adjusted-Langevin acceptance probability of the SGLD proposals
    (computed on the minibatch losses, every ``mala_every`` steps after burn-in)."""
    diverged: np.ndarray
    """(C,) bool: the chain's loss became non-finite or exceeded ``divergence_threshold``."""
    nbeta: float
    step_size: float
    localization: float
    num_draws: int
    num_burnin: int
    batch_size: int
    num_samples: int
    num_params: int
    """Coordinates sampled: the trainable parameters, or those ``restrict`` selected."""
    sampler: str
    paired: bool
    seed: int
    seconds: float
    """Wall time of the call up to the end of sampling (setup, L_n(w*), chains); from
    :func:`estimate_llc_trajectory`, that of the whole call divided by its K checkpoints."""
    rhat: float = math.nan
    """Rank-normalised split R-hat of the LLC trace (ArviZ)."""
    ess_bulk: float = math.nan
    """Bulk effective sample size of the LLC trace, all chains together (ArviZ)."""
    ess_tail: float = math.nan
    """Tail (5% / 95% quantile) effective sample size of the LLC trace (ArviZ)."""
    llc_mcse: float = math.nan
    """Monte Carlo standard error of ``llc_mean`` (ArviZ, from the bulk ESS)."""
    trace_drift: float = math.nan
    """|mean of the second half of the draws - first half| / max(|llc_mean|, llc_std)."""
    loss_budget: float = math.nan
    """nbeta * step_size * (num_burnin + num_draws): how far a direction of unit L-curvature
    relaxes, in units of e-folds times 2."""
    localization_budget: float = math.nan
    """localization * step_size * (num_burnin + num_draws): the same for directions held
    only by the localization (flat in L)."""
    mala_exact: bool = False
    """True when ``mala_acceptance`` is exact (full-batch gradients and losses); False when
    it is a proxy read on minibatch losses."""
    health_reasons: list[str] = field(default_factory=list)
    """Why the estimate is not healthy, one line per failed check (empty: healthy)."""
    llc_components: np.ndarray | None = None
    """(K,) per-component LLCs nbeta * (E[L_k(w)] - L_k(w*)) over the same draws, when
    ``loss_fn`` returns a vector; None otherwise."""
    component_init_loss: np.ndarray | None = None
    """(K,) L_k(w*) for each component; None for a scalar loss."""
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when every check of :func:`sltrepro.llc_diagnostics.assess` passed."""
        return not self.health_reasons

    @property
    def num_chains(self) -> int:
        return len(self.llc_per_chain)

    @property
    def llc_trace(self) -> np.ndarray:
        """(C, D) the per-draw LLC reading nbeta * ``delta_trace`` of every chain (diverged
        ones included): what the diagnostics and trace figures read."""
        return float(self.nbeta) * self.delta_trace

    @property
    def chain_steps_per_second(self) -> float:
        steps = self.num_chains * (self.num_draws + self.num_burnin)
        return steps / self.seconds if self.seconds > 0 else float("nan")

    def summary_row(self, prefix: str = "") -> dict:
        """One flat row of scalars, spelled the same for every paper (see ``ROW_FIELDS``).

        ``mala_acceptance`` is the mean over chains (NaN when never checked);
        ``health_reasons`` is the reasons joined by "; " ("" when healthy). ``prefix`` is
        put before every name that does not already start with it, for tables that hold
        other columns too: with "llc_", ``rhat`` becomes ``llc_rhat`` and ``llc_mean``
        stays ``llc_mean``.
        """
        row = {
            "llc_mean": self.llc_mean,
            "llc_std": self.llc_std,
            "llc_mcse": self.llc_mcse,
            "rhat": self.rhat,
            "ess_bulk": self.ess_bulk,
            "ess_tail": self.ess_tail,
            "trace_drift": self.trace_drift,
            "loss_budget": self.loss_budget,
            "localization_budget": self.localization_budget,
            "mala_acceptance": _mean_acceptance(self.mala_acceptance),
            "mala_exact": self.mala_exact,
            "num_chains": self.num_chains,
            "diverged_chains": int(self.diverged.sum()),
            "healthy": self.healthy,
            "health_reasons": "; ".join(self.health_reasons),
            "init_loss": self.init_loss,
            "sampler": self.sampler,
            "step_size": self.step_size,
            "nbeta": self.nbeta,
            "localization": self.localization,
            "num_draws": self.num_draws,
            "num_burnin": self.num_burnin,
            "batch_size": self.batch_size,
            "paired": self.paired,
            "num_samples": self.num_samples,
            "num_params": self.num_params,
            "seed": self.seed,
            "seconds": self.seconds,
        }
        return {
            (k if k.startswith(prefix) else prefix + k): (
                float(v) if isinstance(v, np.floating) else v
            )
            for k, v in row.items()
        }

    def summary(self) -> dict:
        """JSON-friendly: :meth:`summary_row` plus the per-chain estimates (NaN -> None)
        and, for a vector loss, the per-component LLCs."""
        keep = self.summary_row()
        keep["llc_per_chain"] = [None if math.isnan(v) else float(v) for v in self.llc_per_chain]
        if self.llc_components is not None:
            keep["llc_components"] = [float(v) for v in self.llc_components]
        return keep


def _mean_acceptance(acceptance: np.ndarray) -> float:
    """Mean over the chains that were checked (NaN when none was)."""
    return float(np.nanmean(acceptance)) if np.isfinite(acceptance).any() else math.nan


ROW_FIELDS = (
    "llc_mean", "llc_std", "llc_mcse", "rhat", "ess_bulk", "ess_tail", "trace_drift",
    "loss_budget", "localization_budget", "mala_acceptance", "mala_exact", "num_chains",
    "diverged_chains", "healthy", "health_reasons", "init_loss", "sampler", "step_size",
    "nbeta", "localization", "num_draws", "num_burnin", "batch_size", "paired",
    "num_samples", "num_params", "seed", "seconds",
)  # fmt: skip
"""The keys of :meth:`LLCResult.summary_row`, in order: the one spelling papers use."""


def default_nbeta(num_samples: int) -> float:
    """n / log n: the inverse temperature times n used by Lau et al. and Furman & Lau.

    devinterp 1.3.2's default is batch_size / log(batch_size) instead; the two differ by a
    large factor whenever the batch is much smaller than the dataset.
    """
    if num_samples < 2:
        raise ValueError(f"need at least 2 samples for n / log n, got n = {num_samples}")
    return num_samples / math.log(num_samples)


def estimate_llc(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor],
    settings: SamplerSettings | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    init_loss: float | torch.Tensor | None = None,
    restrict: Mapping[str, torch.Tensor] | None = None,
    verbose: bool = True,
    **overrides,
) -> LLCResult:
    """Estimate the local learning coefficient of ``model`` at its current parameters w*.

    Parameters
    ----------
    model : nn.Module
        Evaluated at its current parameters (w*), never modified. Only parameters with
        ``requires_grad=True`` are sampled; the rest and all buffers stay fixed. Put the
        model in ``eval()`` mode yourself if it has dropout or batch norm.
    loss_fn : callable
        ``loss_fn(model(inputs_batch), targets_batch)`` -> the mean loss over the batch
        (average negative log-likelihood per sample, up to a constant), a 0-d tensor. It
        may instead return a 1-D tensor of K component losses (e.g. the mean loss at each
        of K token positions): the chains then sample the posterior of their mean, and
        ``llc_components`` reports nbeta * (E[L_k] - L_k(w*)) for each k over the same draws.
        For a per-token LLC with its own posterior, call once per token with a ``loss_fn``
        that selects that token.
    data : (inputs, targets)
        Tensors with the sample dimension first (n samples). Moved to ``device`` once.
    settings : SamplerSettings, optional
        Chains, draws, step size, nbeta, localization, batch, sampler, pairing, MALA,
        divergence threshold (see :class:`sltrepro.llc_settings.SamplerSettings` for each
        and its default). ``**overrides`` replace single fields of it, so
        ``estimate_llc(model, loss_fn, data, num_chains=8, step_size=1e-4)`` works too.
    seed : int
        Same seed and settings give the same result.
    device : "auto" | "cpu" | "cuda" | torch.device
    init_loss : float or tensor, optional
        L_n(w*) if already known; else computed on the full data in chunks of
        ``settings.eval_batch_size``.
    restrict : {parameter name: bool tensor of its shape}, optional
        The weight-refined LLC: sample only the coordinates marked True (e.g. one attention
        head, :func:`sltrepro.models.attn_lm.head_mask`); every other weight, including
        trainable parameters not named, stays exactly at w*. None: all trainable parameters.
        ``ValueError`` for an unknown or frozen name, a wrong shape or dtype, or an empty
        selection.
    verbose : bool
        Show a progress bar over steps (quiet anyway when not on a terminal).

    Returns
    -------
    LLCResult
        The estimate with its traces, diagnostics and health verdict. Diverged chains are
        excluded from the mean and named in a warning; an unhealthy estimate is returned
        with a warning that lists the reasons and what to change. A negative estimate (w*
        not a local minimum, or a poorly tuned sampler) is returned as is, with a warning.

    Raises
    ------
    LLCDivergenceError
        When every chain diverges; ``err.result`` is the (all-NaN) result.
    ValueError
        On bad settings or a non-finite loss at w*.

    Notes
    -----
    Memory grows by about 6-8 float32 copies of the sampled parameters per chain, over a
    fixed 7-12 copies: measured at 2M parameters by ``benchmarks/bench_memory.py`` (6.3
    copies per chain at batch 10, 7.5-8.0 at batch 500, so the minibatch's activations
    account for 1-2 of them; how the rest splits between the chain's weights, gradient,
    noise and the update's temporaries was not measured).
    """
    start_time = time.perf_counter()
    cfg = (settings or SamplerSettings()).replace(**overrides)
    x, y = check_data(data)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    fm = FlatModel(model, loss_fn, dev)
    x, y = x.to(dev), y.to(dev)
    if init_loss is None:
        l0 = flat_full_loss(fm, fm.w0, x, y, cfg.eval_batch_size)
    else:
        l0 = torch.as_tensor(init_loss, dtype=fm.dtype, device=dev)
        _check_init_loss_shape(l0, fm, x, y)
    _check_init_loss(l0)
    run = _ChainRunner(fm, x, y, fm.w0[None], l0[None], cfg, _free_coordinates(fm, restrict))
    parts = run.run_all([int(seed)], verbose)
    seconds = time.perf_counter() - start_time  # sampling; the diagnostics are not timed
    result = _result(run, parts[0], l0, seed=int(seed), seconds=seconds)
    if result.diverged.all():
        raise LLCDivergenceError(_all_diverged_message(result, run.threshold), result)
    _warn_unhealthy(result)
    return result


def estimate_llc_trajectory(
    model: nn.Module | None,
    checkpoints: Sequence[nn.Module | Mapping[str, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor],
    settings: SamplerSettings | None = None,
    *,
    seed: int | Sequence[int] = 0,
    device: str | torch.device = "auto",
    restrict: Mapping[str, torch.Tensor] | None = None,
    verbose: bool = True,
    max_stacked_checkpoints: int | None = None,
    **overrides,
) -> list[LLCResult]:
    """The LLC at each of K checkpoints of one model (e.g. along training), in one run.

    The chains of all K checkpoints run together in one ``(K * C, P)`` tensor, each chain
    tethered to (and started at) its own checkpoint's w*, so one forward and backward pass
    serves all of them. Each checkpoint draws its minibatches and noise from its own random
    stream, seeded as a separate :func:`estimate_llc` call with the same seed would seed it,
    so the K results equal K separate calls (same settings, data and seeds): traces,
    estimates, divergence, MALA rates and diagnostics, up to the rounding of the batched
    forward pass (bit-identical when the model's kernels do not change with the number of
    chains in the batch; ``tests/test_llc_trajectory.py`` checks it).

    Parameters
    ----------
    model : nn.Module or None
        The architecture, evaluated at each checkpoint's parameters (never modified).
        None: the checkpoints are modules and the first one is used.
    checkpoints : sequence of K nn.Module or state dicts
        Each holds the trainable parameters of one w* (a module of the same architecture,
        or a mapping from parameter name to tensor that holds every trainable parameter of
        ``model``). Names, shapes and dtypes must agree, and modules must agree on frozen
        parameters and buffers (all chains share them); a ``ValueError`` says which do not.
    loss_fn, data, settings, device, restrict, verbose, **overrides
        As for :func:`estimate_llc`; one :class:`SamplerSettings` serves every checkpoint.
        ``num_chains`` (and ``max_parallel_chains``) count chains per checkpoint.
    seed : int or sequence of K ints
        The seed of each checkpoint's estimate; an int is used for all of them.
    max_stacked_checkpoints : int or None
        Stack at most this many checkpoints' chains at a time (groups in checkpoint order,
        one after another); None: all K. Past the cache, the activations of K * C chains
        cost more than the per-call overhead stacking saves (``benchmarks/bench_trajectory.py``).
        The results do not depend on it.

    Returns
    -------
    list of K LLCResult
        In checkpoint order. ``seconds`` is the wall time of the checkpoint's group divided
        by its size (each checkpoint's share of the shared run).

    Raises
    ------
    LLCDivergenceError
        When every chain of some checkpoint diverged, after all checkpoints ran:
        ``err.results`` holds all K results (the diverged ones all-NaN), ``err.result``
        the first all-diverged one.
    ValueError
        On bad settings, mismatched checkpoints or a non-finite loss at some w*.
    """
    start_time = time.perf_counter()
    cfg = (settings or SamplerSettings()).replace(**overrides)
    x, y = check_data(data)
    if not len(checkpoints):
        raise ValueError("no checkpoints given")
    if model is None:
        if not isinstance(checkpoints[0], nn.Module):
            raise ValueError("model=None needs modules as checkpoints, got state dicts")
        model = checkpoints[0]
    seeds = [int(seed)] * len(checkpoints) if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != len(checkpoints):
        raise ValueError(f"{len(seeds)} seeds for {len(checkpoints)} checkpoints")
    group = len(checkpoints) if max_stacked_checkpoints is None else max_stacked_checkpoints
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"max_stacked_checkpoints must be a positive int or None, got {group!r}")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    fm = FlatModel(model, loss_fn, dev)
    free = _free_coordinates(fm, restrict)
    w0s = torch.stack([checkpoint_params(fm, c, i) for i, c in enumerate(checkpoints)])
    x, y = x.to(dev), y.to(dev)
    l0s = torch.stack([flat_full_loss(fm, w, x, y, cfg.eval_batch_size) for w in w0s])
    for l0 in l0s:
        _check_init_loss(l0)
    setup = time.perf_counter() - start_time
    results = []
    for first in range(0, len(checkpoints), group):
        part_start = time.perf_counter()
        picked = slice(first, first + group)
        run = _ChainRunner(fm, x, y, w0s[picked], l0s[picked], cfg, free)
        parts = run.run_all(seeds[picked], verbose)
        size = len(parts)
        seconds = (time.perf_counter() - part_start) / size + setup / len(checkpoints)
        results += [
            _result(run, part, l0, seed=s, seconds=seconds)
            for part, l0, s in zip(parts, l0s[picked], seeds[picked], strict=True)
        ]
    failed = [k for k, r in enumerate(results) if r.diverged.all()]
    for k, r in enumerate(results):
        if k not in failed:
            _warn_unhealthy(r)
    if failed:
        raise LLCDivergenceError(
            f"checkpoints {failed} of {len(results)}: "
            + _all_diverged_message(results[failed[0]], run.threshold),
            results[failed[0]],
            results,
        )
    return results


def _free_coordinates(fm: FlatModel, restrict) -> torch.Tensor | None:
    """(P_free,) indices into the flat vector of the coordinates ``restrict`` samples."""
    return None if restrict is None else fm.flat_mask(restrict).nonzero().squeeze(1)


def _check_init_loss_shape(l0: torch.Tensor, fm: FlatModel, x, y) -> None:
    """A given L_n(w*) must have the loss's shape: one value, or one per loss component
    (a mismatch would otherwise surface as a broadcasting error deep in the chains)."""
    with torch.no_grad():
        shape = check_loss(fm.loss(fm.w0, x[:2], y[:2])).shape
    if l0.shape != shape:
        raise ValueError(
            f"init_loss has shape {tuple(l0.shape)}, but loss_fn returns {tuple(shape)}: "
            "give L_n(w*) for every loss component, or leave init_loss to be computed"
        )


def _check_init_loss(l0: torch.Tensor) -> None:
    if not torch.isfinite(l0).all():
        raise ValueError(f"the loss at w* is not finite ({l0.tolist()}): check model and data")


def _result(run: _ChainRunner, parts: list[dict], l0, *, seed: int, seconds: float) -> LLCResult:
    """One checkpoint's LLCResult from its chain groups' traces, with its warnings."""
    cfg, nbeta = run.cfg, run.nbeta
    n = run.n
    notes = list(run.notes)
    loss_trace = torch.cat([p["loss_trace"] for p in parts]).double().cpu().numpy()
    if run.paired:
        delta_trace = loss_trace - torch.cat([p["ref_trace"] for p in parts]).double().cpu().numpy()
    else:
        delta_trace = loss_trace - l0.double().cpu().numpy()
    diverged = torch.cat([p["bad"] for p in parts]).cpu().numpy()
    acceptance = torch.cat([p["acc"] for p in parts]).cpu().numpy()
    num_chains, num_burnin, num_draws = cfg.num_chains, cfg.num_burnin, cfg.num_draws
    step_size, localization, sampler = cfg.step_size, cfg.localization, cfg.sampler
    batch_size = cfg.batch_size
    multi = l0.dim() == 1
    per_draw = delta_trace.mean(-1) if multi else delta_trace
    per_chain = float(nbeta) * per_draw.mean(1)
    diverged |= ~np.isfinite(per_chain)
    per_chain[diverged] = np.nan
    if diverged.any() and not diverged.all():
        bad = [int(i) for i in np.flatnonzero(diverged)]
        notes.append(
            f"chains {bad} of {num_chains} diverged and are excluded from the LLC mean; "
            f"consider a smaller step_size (now {step_size:g})"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=3)
    good = per_chain[~diverged]
    mean = float(good.mean()) if len(good) else math.nan
    std = float(good.std(ddof=1)) if len(good) > 1 else (0.0 if len(good) else math.nan)
    if mean < 0:
        notes.append(
            f"negative LLC estimate {mean:.4g}: w* may not be a local minimum of the loss, or "
            "the sampler is mistuned (step_size, localization); returned as is"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=3)
    components = comp_l0 = None
    if multi:
        components = float(nbeta) * delta_trace[~diverged].mean(axis=(0, 1))
        comp_l0 = l0.double().cpu().numpy()
    llc_trace = float(nbeta) * per_draw[~diverged]
    stats = diagnostics.chain_statistics(llc_trace)
    steps = num_burnin + num_draws
    stats["llc_mean"] = mean
    stats["trace_drift"] = diagnostics.trace_drift(llc_trace, mean, std)
    stats["loss_budget"] = float(nbeta) * float(step_size) * steps
    stats["localization_budget"] = float(localization) * float(step_size) * steps
    stats["mala_acceptance"] = _mean_acceptance(acceptance)
    mala_exact = batch_size >= n
    reasons = diagnostics.assess(
        stats,
        num_chains=num_chains,
        diverged_chains=int(diverged.sum()),
        sampler=sampler,
        mala_exact=mala_exact,
        unpaired_minibatches=not (mala_exact or run.paired),
    )
    return LLCResult(
        llc_mean=mean,
        llc_std=std,
        llc_per_chain=per_chain,
        init_loss=float(l0.double().mean()),
        loss_trace=loss_trace.mean(-1) if multi else loss_trace,
        delta_trace=per_draw,
        mala_acceptance=acceptance,
        diverged=diverged,
        nbeta=float(nbeta),
        step_size=float(step_size),
        localization=float(localization),
        num_draws=num_draws,
        num_burnin=num_burnin,
        batch_size=min(batch_size, n),
        num_samples=n,
        num_params=run.num_sampled,
        sampler=sampler,
        paired=run.paired,
        seed=int(seed),
        seconds=seconds,
        rhat=stats["rhat"],
        ess_bulk=stats["ess_bulk"],
        ess_tail=stats["ess_tail"],
        llc_mcse=stats["mcse"],
        trace_drift=stats["trace_drift"],
        loss_budget=stats["loss_budget"],
        localization_budget=stats["localization_budget"],
        mala_exact=mala_exact,
        health_reasons=reasons,
        llc_components=components,
        component_init_loss=comp_l0,
        warnings=notes,
    )


def _all_diverged_message(result: LLCResult, threshold: float) -> str:
    return (
        f"all {result.num_chains} chains diverged (non-finite loss, or nbeta * (L - L(w*)) "
        f"above {threshold:.3g}): lower step_size (now {result.step_size:g}); if that does not "
        f"help, lower nbeta (now {result.nbeta:.4g}) or raise localization (now "
        f"{result.localization:g})"
    )


def _warn_unhealthy(result: LLCResult) -> None:
    if result.health_reasons:
        result.warnings.append("LLC estimate not healthy: " + "; ".join(result.health_reasons))
        warnings.warn(result.warnings[-1], RuntimeWarning, stacklevel=3)


class _ChainRunner:
    """Runs the chains of K checkpoints (K = 1 for :func:`estimate_llc`) for burn-in +
    draws, in groups of chains: minibatches, losses and gradients feed the update kernel;
    traces, divergence and MALA observe each step.

    Rows of the stacked ``(K * C, P)`` state are checkpoint-major: rows k*C ... k*C + C - 1
    are checkpoint k's chains, tethered to ``w0s[k]``. Checkpoint k draws its minibatch
    indices and noise from its own generator, in the order a single-checkpoint run draws
    them, and stops observing where that run would stop (all its chains diverged), so each
    checkpoint's numbers are those of its own run.

    With ``free`` (indices of the sampled coordinates, for a weight-refined LLC) the state
    holds those coordinates only, ``(K * C, P_free)``; each step writes them into the rows'
    w* to evaluate the model, and the gradient reaches only them.
    """

    def __init__(self, fm, x, y, w0s, l0s, cfg: SamplerSettings, free=None):
        self.fm, self.x, self.y, self.w0s, self.l0s = fm, x, y, w0s, l0s
        self.cfg, self.free = cfg, free
        self.num_sampled = fm.num_params if free is None else len(free)
        self.n = x.shape[0]
        self.nbeta = default_nbeta(self.n) if cfg.nbeta is None else float(cfg.nbeta)
        if cfg.divergence_threshold is None:
            self.threshold = max(1e4, 100.0 * self.num_sampled)
        else:
            self.threshold = float(cfg.divergence_threshold)
        self.notes = _settings_warnings(cfg, self.nbeta)
        self.full_batch = cfg.batch_size >= self.n
        self.forward, fallback = choose_forward(
            fm, x, y, full_batch=self.full_batch, vectorize=cfg.vectorize
        )
        self.notes += [fallback] if fallback else []
        self.compiled = CompiledLosses(self.forward) if cfg.compile else None
        self.losses = self.compiled or self.forward.losses
        self.batch_size = min(cfg.batch_size, self.n)
        self.paired = cfg.paired and not self.full_batch
        self.limit = self.threshold / self.nbeta  # divergence: loss - L(w*) above this
        self.multi = l0s.dim() == 2

    def run_all(self, seeds, verbose) -> list[list[dict]]:
        """For each checkpoint, the parts of :meth:`run` of its chain groups, in order."""
        cfg, dev = self.cfg, self.fm.w0.device
        group = cfg.num_chains if cfg.max_parallel_chains is None else cfg.max_parallel_chains
        parts = [[] for _ in seeds]
        for first in range(0, cfg.num_chains, group):
            chains = min(group, cfg.num_chains - first)
            gens = [torch.Generator(device=dev).manual_seed(s * 1_000_003 + first) for s in seeds]
            desc = f"LLC chains {first}-{first + chains - 1}"
            if len(seeds) > 1:
                desc += f" of {len(seeds)} checkpoints"
            for k, part in enumerate(self.run(chains, gens, desc, verbose)):
                parts[k].append(part)
        fallback = self.compiled.fallback if self.compiled is not None else None
        if fallback and fallback not in self.notes:
            self.notes.append(fallback)
        return parts

    def _kernel(self, anchor):
        cfg = self.cfg
        hyper = dict(
            step_size=float(cfg.step_size), nbeta=self.nbeta, localization=float(cfg.localization)
        )
        if cfg.sampler == "rmsprop_sgld":
            hyper.update(alpha=cfg.rmsprop_alpha, delta=cfg.rmsprop_eps)
        elif cfg.sampler == "sgnht":
            hyper.update(diffusion=cfg.sgnht_diffusion)
        return sgmcmc.KERNELS[cfg.sampler](anchor, **hyper)

    def _batch(self, chains, gens):
        if self.full_batch:
            return self.x, self.y
        dev = gens[0].device
        size = (chains * self.batch_size,)
        idx = torch.cat([torch.randint(self.n, size, generator=g, device=dev) for g in gens])
        # index_select on the flat index: several times faster than x[idx] on CPU
        return tuple(
            t.index_select(0, idx).view(len(gens) * chains, self.batch_size, *t.shape[1:])
            for t in (self.x, self.y)
        )

    def _embedding(self, anchor):
        """Sampled coordinates (rows, P_free) -> full parameters (rows, P), the rest at
        ``anchor`` ((P,) or (rows, P)); the identity when nothing is restricted."""
        if self.free is None:
            return lambda w: w
        free = self.free
        return lambda w: anchor.expand(w.shape[0], -1).index_copy(-1, free, w)

    def _ref_losses(self, chains, xb, yb):
        """w*'s loss on each chain's minibatch, each checkpoint's rows at its own w*."""
        if len(self.w0s) == 1:
            return self.forward.ref_losses(xb, yb)
        refs = []
        for k, w0 in enumerate(self.w0s):
            mine = slice(k * chains, (k + 1) * chains)
            refs.append(self.forward.ref_losses(xb[mine], yb[mine], w0))
        return torch.cat(refs)

    def run(self, chains, gens, desc, verbose) -> list[dict]:
        """One part per checkpoint: loss / reference traces (C, D[, K]), divergence flags
        and MALA rates (C,) of its ``chains`` chains."""
        cfg, multi = self.cfg, self.multi
        num_ckpt, rows = len(gens), len(gens) * chains
        if num_ckpt == 1:
            anchor, l0_drive = self.w0s[0], self.l0s[0].mean() if multi else self.l0s[0]
        else:
            anchor = self.w0s.repeat_interleave(chains, 0)
            # each checkpoint's mean by itself: the rounding of its own run
            drive0 = torch.stack([l0.mean() for l0 in self.l0s]) if multi else self.l0s
            l0_drive = drive0.repeat_interleave(chains)
        embed = self._embedding(anchor)
        if self.free is not None:
            anchor = anchor[..., self.free]
        kernel = self._kernel(anchor)
        traces = _Traces(rows, cfg.num_draws, self.l0s[0], self.paired)
        divergence = _Divergence(rows, self.limit, anchor)
        mala = _Mala(rows, cfg.mala_every, kernel, anchor) if kernel.reports_drift else None
        noise = torch.empty_like(anchor.expand(rows, -1))
        slices = [noise[k * chains : (k + 1) * chains] for k in range(num_ckpt)]

        def draw_noise():
            for g, part in zip(gens, slices, strict=True):
                torch.randn(part.shape, generator=g, out=part, device=part.device)
            return noise

        stopped = np.zeros(num_ckpt, dtype=bool)
        stop_draw = np.full(num_ckpt, cfg.num_draws)  # draws from here on were never read
        stop_acc = [None] * num_ckpt  # MALA rates when the checkpoint stopped
        state = kernel.init(anchor.expand(rows, -1).clone(), lambda: draw_noise().clone())
        total = cfg.num_burnin + cfg.num_draws
        for step in progress(range(total), desc=desc, total=total, verbose=verbose):
            xb, yb = self._batch(chains, gens)
            w = state.position.detach().requires_grad_(True)
            losses = self.losses(embed(w), xb, yb)
            if step == 0:
                check_loss(losses[0])
            drive = losses.mean(-1) if multi else losses
            (grad,) = torch.autograd.grad(drive.sum(), w)
            with torch.no_grad():
                ref = self._ref_losses(chains, xb, yb) if self.paired else None
                reading = _Reading(
                    step=step,
                    draw=step - cfg.num_burnin,
                    losses=losses.detach(),
                    drive=drive.detach(),
                    ref=ref,
                    ref_drive=l0_drive if ref is None else (ref.mean(-1) if multi else ref),
                )
                traces.observe(reading)
                divergence.observe(reading)
                if step % 100 == 99:
                    # a checkpoint whose chains all diverged stops (its own run would break)
                    done = divergence.all_diverged(num_ckpt) & ~stopped
                    for k in np.flatnonzero(done):
                        stop_draw[k] = max(reading.draw + 1, 0)
                        if mala is not None:
                            stop_acc[k] = mala.rates()[k * chains : (k + 1) * chains].clone()
                    stopped |= done
                    if stopped.all():
                        break
                form_drift = mala is not None and mala.wants(step, reading.draw)
                new_state, info = kernel.step(state, grad, draw_noise(), form_drift=form_drift)
                if mala is not None:
                    mala.observe(reading, state, info)
                state = new_state
        flags = divergence.flags()
        rates = mala.rates() if mala is not None else torch.full((rows,), math.nan)
        parts = []
        for k in range(num_ckpt):
            mine = slice(k * chains, (k + 1) * chains)
            loss, ref = traces.loss[mine], None if traces.ref is None else traces.ref[mine]
            if stopped[k] and num_ckpt > 1:
                loss[:, stop_draw[k] :] = 0
                if ref is not None:
                    ref[:, stop_draw[k] :] = 0
            acc = stop_acc[k] if stopped[k] and stop_acc[k] is not None else rates[mine]
            parts.append({"loss_trace": loss, "ref_trace": ref, "bad": flags[mine], "acc": acc})
        return parts


@dataclass(frozen=True)
class _Reading:
    """What one step read before its update: losses (C,) or (C, K), the scalar loss that
    drives the chains (C,), and w*'s loss on the same minibatch when paired."""

    step: int
    draw: int  # step - num_burnin: negative during burn-in
    losses: torch.Tensor
    drive: torch.Tensor
    ref: torch.Tensor | None
    ref_drive: torch.Tensor

    @property
    def level(self) -> torch.Tensor:
        """(C,) loss above w*'s (on the same batch when paired, else above L_n(w*))."""
        return self.drive - self.ref_drive


class _Traces:
    """Loss (and paired reference) of every chain at every draw."""

    def __init__(self, chains, draws, l0, paired):
        shape = (chains, draws) + tuple(l0.shape)
        self.loss = torch.zeros(shape, dtype=l0.dtype, device=l0.device)
        self.ref = torch.zeros(shape, dtype=l0.dtype, device=l0.device) if paired else None

    def observe(self, r: _Reading):
        if r.draw >= 0:
            self.loss[:, r.draw] = r.losses
            if r.ref is not None:
                self.ref[:, r.draw] = r.ref


class _Divergence:
    """Max over steps of each chain's loss above w*'s (on the same minibatch when paired,
    so that minibatch scatter at large losses is not read as divergence); NaN propagates
    through torch.maximum. A chain diverged when that max is not below the limit."""

    def __init__(self, chains, limit, w0):
        self.limit = limit
        self.worst = torch.full((chains,), -math.inf, dtype=w0.dtype, device=w0.device)

    def observe(self, r: _Reading):
        torch.maximum(self.worst, r.drive - r.ref_drive, out=self.worst)

    def flags(self) -> torch.Tensor:
        return ~(self.worst < self.limit)  # also True for NaN

    def all_diverged(self, groups: int = 1) -> np.ndarray:
        """(groups,) bool: every chain of each of ``groups`` equal consecutive groups of
        rows diverged."""
        ok = (self.worst < self.limit).view(groups, -1).any(1)
        return ~ok.cpu().numpy()


class _Mala:
    """Metropolis-adjusted-Langevin acceptance of the move from step s to s + 1, for every
    s + 1 = 0 (mod ``every``) after burn-in: the state one step before a check is kept."""

    def __init__(self, chains, every, kernel, w0):
        self.every, self.kernel, self.w0 = every, kernel, w0
        self.total = torch.zeros(chains, dtype=torch.float64, device=w0.device)
        self.count = 0
        self.prev = None  # (w, drift, potential, precond) one step before a check

    def _check(self, step, draw):
        return bool(self.every) and draw >= 0 and step % self.every == 0

    def _keep(self, step, draw):
        return bool(self.every) and draw >= -1 and (step + 1) % self.every == 0

    def wants(self, step, draw) -> bool:
        return self._check(step, draw) or self._keep(step, draw)

    def observe(self, r: _Reading, state, info):
        if not self.wants(r.step, r.draw):
            return
        w, kernel = state.position, self.kernel
        # U = nbeta L + gamma/2 |w - w*|^2; paired: L read relative to w* on the same batch,
        # which removes most of the minibatch noise from U differences
        level = r.level if r.ref is not None else r.drive
        potential = kernel.nbeta * level + 0.5 * kernel.gamma * (w - self.w0).pow(2).sum(-1)
        here = (w, info.drift, potential, info.precond)
        if self._check(r.step, r.draw) and self.prev is not None:
            self.total += sgmcmc.mala_acceptance(self.prev, here, kernel.eps)
            self.count += 1
        self.prev = here if self._keep(r.step, r.draw) else None

    def rates(self) -> torch.Tensor:
        if not self.count:
            return torch.full_like(self.total, math.nan)
        return self.total / self.count


def _settings_warnings(cfg: SamplerSettings, nbeta: float) -> list[str]:
    """Warnings about settings that cannot equilibrate, known before any step is taken."""
    notes = []
    budget = nbeta * cfg.step_size * (cfg.num_burnin + cfg.num_draws)
    floor = diagnostics.DEFAULT_THRESHOLDS.min_loss_budget
    if cfg.sampler == "sgld" and budget < floor:
        notes.append(
            f"nbeta * step_size * (num_burnin + num_draws) = {budget:.3g} < {floor:g}: only "
            f"directions of L-curvature above {2 / budget:.2g} can equilibrate; raise "
            "step_size or num_burnin"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=3)
    return notes
