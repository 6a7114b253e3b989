"""Local learning coefficient (LLC) estimation with SGLD (Lau et al. 2023, arXiv 2308.12108).

The estimator is

    lambda_hat(w*) = nbeta * ( E_w[L_n(w)] - L_n(w*) ),

the expectation taken over the localised tempered posterior

    p(w) ∝ exp( -nbeta * L_n(w) - (gamma / 2) * ||w - w*||^2 ),

sampled with stochastic-gradient Langevin dynamics (SGLD):

    w <- w - (eps / 2) * ( nbeta * grad L_batch(w) + gamma * (w - w*) ) + N(0, eps * I).

``L_n`` is the average negative log-likelihood per sample (up to a constant); the caller's
``loss_fn`` must return exactly that, averaged over the minibatch it is given.

All chains of a call run together: the trainable parameters of every chain live in one
``(chains, params)`` tensor, the model is evaluated for all chains at once with
``torch.func.functional_call`` under ``torch.func.vmap`` and differentiated with ordinary
autograd, and the SGLD update is a handful of in-place operations on that tensor. Models
that ``vmap`` cannot batch fall back (with a warning) to a loop over chains with the same
arithmetic and the same random numbers.

A model can also evaluate all chains itself, faster than ``vmap`` can: if it has a method
``forward_chains(params, x)`` taking a dict of its parameters, each ``(C, *shape)``, and
inputs ``(C, B, ...)``, and returning outputs ``(C, B, ...)``, it is used whenever every
parameter is trainable and the model has no buffers (e.g. deep linear networks, where it is
a chain of ``bmm``; only ``loss_fn`` is then vmapped).
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from sltrepro import llc_diagnostics as diagnostics
from sltrepro.device import resolve_device
from sltrepro.progress import progress

SAMPLERS = ("sgld", "rmsprop_sgld")


class LLCDivergenceError(RuntimeError):
    """Every chain of an LLC estimate diverged.

    ``result`` is the :class:`LLCResult` all the same (``llc_mean`` NaN, every chain
    flagged, ``healthy`` False): a sweep records ``err.result.summary_row()`` instead of
    inventing a row of its own.
    """

    def __init__(self, message: str, result: LLCResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class LLCResult:
    """The outcome of :func:`estimate_llc`: the estimate, its traces and its evidence.

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
    sampler: str
    paired: bool
    seed: int
    seconds: float
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


def sampler_settings(config: dict) -> dict:
    """The entries of a config block that are :func:`estimate_llc` sampler settings.

    A paper keeps its sampler settings (num_chains, num_draws, step_size, ...) in a config
    block, possibly beside other keys; this picks out the ones ``estimate_llc`` takes, so the
    block passes straight through: ``estimate_llc(model, loss_fn, data,
    **sampler_settings(block), seed=..., device=...)``. ``seed``, ``device`` and ``verbose``
    belong to the call, not the block, and are never picked.
    """
    names = set(inspect.signature(estimate_llc).parameters)
    names -= {"model", "loss_fn", "data", "seed", "device", "verbose"}
    return {key: value for key, value in config.items() if key in names}


def default_nbeta(num_samples: int) -> float:
    """n / log n: the inverse temperature times n used by Lau et al. and Furman & Lau.

    devinterp 1.3.2's default is batch_size / log(batch_size) instead; the two differ by a
    large factor whenever the batch is much smaller than the dataset.
    """
    if num_samples < 2:
        raise ValueError(f"need at least 2 samples for n / log n, got n = {num_samples}")
    return num_samples / math.log(num_samples)


class _FlatModel:
    """A model seen as a function of one flat vector of its trainable parameters.

    ``loss(flat, x, y)`` with flat of shape (P,) returns ``loss_fn(model(x), y)``; the
    model object itself is never modified. Frozen parameters and buffers are constants.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, device: torch.device):
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no trainable parameters (requires_grad=True)")
        dtypes = {p.dtype for _, p in named}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise ValueError(f"trainable parameters must share one float dtype, got {dtypes}")
        self.model = model
        self.loss_fn = loss_fn
        self.names = [k for k, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.dtype = named[0][1].dtype
        self.w0 = torch.cat([p.detach().reshape(-1) for _, p in named]).to(device)
        frozen = {k: p.detach().to(device) for k, p in model.named_parameters()}
        frozen = {k: v for k, v in frozen.items() if k not in set(self.names)}
        buffers = {k: b.to(device) for k, b in model.named_buffers()}
        self.consts = {**frozen, **buffers}
        forward_chains = getattr(model, "forward_chains", None)
        self.forward_chains = None if self.consts else forward_chains

    @property
    def num_params(self) -> int:
        return self.w0.numel()

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of flat (..., P) as the trainable parameters, each (..., *shape)."""
        lead = flat.shape[:-1]
        pieces = torch.split(flat, self.numels, dim=-1)
        return {
            k: v.view(*lead, *s) for k, v, s in zip(self.names, pieces, self.shapes, strict=True)
        }

    def loss_params(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.model, {**params, **self.consts}, (x,)), y)

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_params(self.split(flat), x, y)


def _check_loss(value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() > 1:
        raise ValueError(
            "loss_fn must return a scalar (mean loss over the batch) or a 1-D tensor of "
            f"per-component mean losses; got {getattr(value, 'shape', type(value))}"
        )
    return value


def full_data_loss(
    model: nn.Module,
    loss_fn: Callable,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    eval_batch_size: int = 8192,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """L_n at the model's current parameters: size-weighted mean of ``loss_fn`` over chunks.

    Returns a 0-d tensor, or (K,) when ``loss_fn`` returns K components. Exact when
    ``loss_fn`` is a mean over samples (as :func:`estimate_llc` requires).
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    fm = _FlatModel(model, loss_fn, dev)
    x, y = _check_data(data)
    return _full_loss(fm, fm.w0, x.to(dev), y.to(dev), eval_batch_size)


def _full_loss(fm: _FlatModel, w: torch.Tensor, x, y, chunk: int) -> torch.Tensor:
    n = x.shape[0]
    total = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            part = _check_loss(fm.loss(w, x[start : start + chunk], y[start : start + chunk]))
            part = part.detach().double() * min(chunk, n - start)
            total = part if total is None else total + part
    return (total / n).to(fm.dtype)


def _check_data(data) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, Sequence) and len(data) == 2):
        raise ValueError("data must be a tuple (inputs, targets) of tensors")
    x, y = data
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ValueError("data must be a tuple (inputs, targets) of tensors")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and targets differ in length: {x.shape[0]} vs {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {x.shape[0]}")
    return x, y


def _positive(name: str, value, *, allow_zero: bool = False) -> None:
    real = isinstance(value, numbers.Real) and math.isfinite(value)
    if not (real and (value >= 0 if allow_zero else value > 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def estimate_llc(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    num_chains: int = 4,
    num_draws: int = 1000,
    num_burnin: int = 0,
    step_size: float = 1e-3,
    nbeta: float | None = None,
    localization: float = 1.0,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "auto",
    sampler: str = "sgld",
    paired: bool = False,
    init_loss: float | torch.Tensor | None = None,
    eval_batch_size: int = 8192,
    max_parallel_chains: int | None = None,
    vectorize: bool | None = None,
    mala_every: int = 10,
    rmsprop_alpha: float = 0.99,
    rmsprop_eps: float = 1.0,
    divergence_threshold: float | None = None,
    verbose: bool = True,
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
    num_chains, num_draws, num_burnin : int
        Chains start at w*; the first ``num_burnin`` steps are discarded, every later step
        is a draw.
    step_size : float
        SGLD epsilon. For ``rmsprop_sgld`` it multiplies the preconditioner 1/sqrt(V),
        so useful values are larger (V is the running mean of the squared nbeta-scaled
        gradient).
    nbeta : float, optional
        n * beta. Defaults to n / log n with n the dataset size, as in the papers
        (devinterp 1.3.2 defaults to batch_size / log(batch_size) instead).
    localization : float
        gamma, the strength of the Gaussian tether to w*.
    batch_size : int
        Minibatch size (samples drawn with replacement, independently per chain and draw).
        ``batch_size >= n`` runs full-batch Langevin dynamics on the whole dataset.
    seed : int
        Same seed and arguments give the same result.
    device : "auto" | "cpu" | "cuda" | torch.device
    sampler : "sgld" | "rmsprop_sgld"
        ``rmsprop_sgld`` preconditions drift and noise with G = 1/(sqrt(V) + rmsprop_eps),
        V the running mean (decay ``rmsprop_alpha``, started at the first squared
        gradient) of the squared nbeta-scaled loss gradient (pSGLD without its correction
        term). ``rmsprop_eps`` (default 1, in units of nbeta * grad L) caps G at
        1/rmsprop_eps: at w* itself the gradient is ~0, and a tiny floor would make the
        first steps explode.
    paired : bool
        Read each draw as loss(w, batch) - loss(w*, batch) on the chain's own minibatch:
        the same expectation as loss(w, batch) - L_n(w*), far less variance when lambda is
        small (or when the loss itself is large). The divergence check reads the same paired
        difference. One extra forward per step. Ignored (exact anyway) when full-batch.
    init_loss : float or tensor, optional
        L_n(w*) if already known; else computed on the full data in chunks of
        ``eval_batch_size``.
    max_parallel_chains : int, optional
        Run at most this many chains at once (memory: each running chain holds about 4
        copies of the parameters, plus 2 with ``rmsprop_sgld``, plus its activations).
        Chains are processed in groups; each group has its own random stream.
    vectorize : bool, optional
        True: batch the chains with vmap; False: loop over chains (same numbers); None:
        try vmap and fall back to the loop with a warning if the model cannot be batched.
    mala_every : int
        Compute the MALA acceptance probability every this many steps (0: never).
    divergence_threshold : float, optional
        A chain diverges when its loss is non-finite or nbeta * (loss - L_n(w*)) exceeds
        this at any step (paired: nbeta * (loss - loss of w* on the same minibatch)).
        Default max(1e4, 100 * num_params), far above any real draw.
    verbose : bool
        Show a progress bar over steps (quiet anyway when not on a terminal).

    Returns
    -------
    LLCResult
        Diverged chains are excluded from the mean and named in a warning. A negative
        estimate (w* not a local minimum, or a poorly tuned sampler) is returned as is, with
        a warning.

    Raises
    ------
    LLCDivergenceError
        When every chain diverges.
    ValueError
        On bad arguments or a non-finite loss at w*.
    """
    start_time = time.perf_counter()
    x, y = _check_data(data)
    n = x.shape[0]
    for name, val in (("num_chains", num_chains), ("num_draws", num_draws)):
        if not (isinstance(val, numbers.Integral) and val >= 1):
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    if not (isinstance(num_burnin, numbers.Integral) and num_burnin >= 0):
        raise ValueError(f"num_burnin must be an int >= 0, got {num_burnin!r}")
    if not (isinstance(batch_size, numbers.Integral) and batch_size >= 1):
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    _positive("step_size", step_size)
    _positive("localization", localization, allow_zero=True)
    if nbeta is None:
        nbeta = default_nbeta(n)
    _positive("nbeta", nbeta)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not (isinstance(mala_every, numbers.Integral) and mala_every >= 0):
        raise ValueError(f"mala_every must be an int >= 0, got {mala_every!r}")
    group = num_chains if max_parallel_chains is None else int(max_parallel_chains)
    if group < 1:
        raise ValueError(f"max_parallel_chains must be >= 1, got {max_parallel_chains!r}")

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    fm = _FlatModel(model, loss_fn, dev)
    x, y = x.to(dev), y.to(dev)
    if init_loss is None:
        l0 = _full_loss(fm, fm.w0, x, y, eval_batch_size)
    else:
        l0 = torch.as_tensor(init_loss, dtype=fm.dtype, device=dev)
    if not torch.isfinite(l0).all():
        raise ValueError(f"the loss at w* is not finite ({l0.tolist()}): check model and data")
    if divergence_threshold is None:
        threshold = max(1e4, 100.0 * fm.num_params)
    else:
        _positive("divergence_threshold", divergence_threshold, allow_zero=True)
        threshold = float(divergence_threshold)

    run = _ChainRunner(
        fm,
        x,
        y,
        l0,
        nbeta=float(nbeta),
        eps=float(step_size),
        gamma=float(localization),
        batch_size=batch_size,
        sampler=sampler,
        paired=paired and batch_size < n,
        mala_every=mala_every,
        rms=(rmsprop_alpha, rmsprop_eps),
        threshold=threshold,
        vectorize=vectorize,
    )
    parts = []
    for first in range(0, num_chains, group):
        chains = min(group, num_chains - first)
        gen = torch.Generator(device=dev).manual_seed(int(seed) * 1_000_003 + first)
        desc = f"LLC chains {first}-{first + chains - 1}"
        parts.append(run.run(chains, num_burnin, num_draws, gen, desc, verbose))
    loss_trace = torch.cat([p["loss_trace"] for p in parts]).double().cpu().numpy()
    if run.paired:
        delta_trace = loss_trace - torch.cat([p["ref_trace"] for p in parts]).double().cpu().numpy()
    else:
        delta_trace = loss_trace - l0.double().cpu().numpy()
    diverged = torch.cat([p["bad"] for p in parts]).cpu().numpy()
    acceptance = torch.cat([p["acc"] for p in parts]).cpu().numpy()
    multi = l0.dim() == 1
    per_draw = delta_trace.mean(-1) if multi else delta_trace
    per_chain = float(nbeta) * per_draw.mean(1)
    diverged |= ~np.isfinite(per_chain)
    per_chain[diverged] = np.nan
    notes = list(run.warned)
    if diverged.any() and not diverged.all():
        bad = [int(i) for i in np.flatnonzero(diverged)]
        notes.append(
            f"chains {bad} of {num_chains} diverged and are excluded from the LLC mean; "
            f"consider a smaller step_size (now {step_size:g})"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    good = per_chain[~diverged]
    mean = float(good.mean()) if len(good) else math.nan
    std = float(good.std(ddof=1)) if len(good) > 1 else (0.0 if len(good) else math.nan)
    if mean < 0:
        notes.append(
            f"negative LLC estimate {mean:.4g}: w* may not be a local minimum of the loss, or "
            "the sampler is mistuned (step_size, localization); returned as is"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
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
    )
    result = LLCResult(
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
        num_params=fm.num_params,
        sampler=sampler,
        paired=run.paired,
        seed=int(seed),
        seconds=time.perf_counter() - start_time,
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
    if diverged.all():
        raise LLCDivergenceError(
            f"all {num_chains} chains diverged (non-finite loss, or nbeta * (L - L(w*)) above "
            f"{threshold:.3g}): lower step_size (now {step_size:g}); if that does not help, "
            f"lower nbeta (now {float(nbeta):.4g}) or raise localization (now {localization:g})",
            result,
        )
    if reasons:
        notes.append("LLC estimate not healthy: " + "; ".join(reasons))
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    return result


def _mala_acceptance(prev, cur, half_eps: float) -> torch.Tensor:
    """(C,) Metropolis-Hastings acceptance probability of the move prev -> cur.

    Each state is (w, drift = grad U, U, G) for the potential U = nbeta L + gamma/2 |w-w*|^2
    and the diagonal preconditioner G (None for plain SGLD); the proposal is
    N(w - (eps/2) G drift, eps G).
    """
    w_a, drift_a, u_a, g_a = prev
    w_b, drift_b, u_b, g_b = cur
    eps = 2.0 * half_eps

    def log_q(to, frm, drift, g):  # log N(to; frm - (eps/2) G drift, eps G), no constants
        if g is None:
            return -(to - frm + half_eps * drift).pow(2).sum(-1) / (2 * eps)
        r = to - frm + half_eps * g * drift
        return -(r.pow(2) / g).sum(-1) / (2 * eps) - 0.5 * g.log().sum(-1)

    log_ratio = (u_a - u_b) + log_q(w_a, w_b, drift_b, g_b) - log_q(w_b, w_a, drift_a, g_a)
    log_ratio = torch.nan_to_num(log_ratio.double(), nan=-math.inf)
    return log_ratio.clamp(max=0.0).exp()


class _ChainRunner:
    """Runs a group of chains for burn-in + draws; all chains of a group in one tensor."""

    def __init__(
        self,
        fm,
        x,
        y,
        l0,
        *,
        nbeta,
        eps,
        gamma,
        batch_size,
        sampler,
        paired,
        mala_every,
        rms,
        threshold,
        vectorize,
    ):
        self.fm, self.x, self.y, self.l0 = fm, x, y, l0
        self.nbeta, self.eps, self.gamma = nbeta, eps, gamma
        self.n = x.shape[0]
        self.full_batch = batch_size >= self.n
        self.batch_size = min(batch_size, self.n)
        self.sampler, self.paired, self.mala_every = sampler, paired, mala_every
        self.rms_alpha, self.rms_eps = rms
        self.limit = threshold / nbeta  # divergence: loss - L(w*) above this
        self.vectorize = vectorize
        # a model's own all-chains forward needs no vmap trial: it is batched by construction
        self.forward_chains = fm.forward_chains if vectorize is not False else None
        if self.forward_chains is not None:
            self.vectorize = True
        self.warned: list[str] = []
        # parameters are split into per-tensor views outside vmap (plain views, cheap)
        self._vmapped = vmap(fm.loss_params, in_dims=(0, 0, 0), randomness="different")
        self._vmapped_full = vmap(fm.loss_params, in_dims=(0, None, None), randomness="different")
        self._vmapped_ref = vmap(fm.loss_params, in_dims=(None, 0, 0), randomness="different")
        self._vmapped_loss = vmap(fm.loss_fn, randomness="different")
        self._w0_params = fm.split(fm.w0)

    # -- loss of every chain ---------------------------------------------------------------
    def _losses(self, w: torch.Tensor, xb, yb) -> torch.Tensor:
        """(C,) or (C, K) losses; xb/yb are (C, B, ...) or the full data when full-batch."""
        if self.forward_chains is not None:
            return self._chain_losses(self.fm.split(w), xb, yb)
        if self.vectorize is not False:
            try:
                batched = self._vmapped_full if self.full_batch else self._vmapped
                out = batched(self.fm.split(w), xb, yb)
                self.vectorize = True
                return out
            except Exception as exc:  # vmap cannot batch some models: loop instead
                if self.vectorize:
                    raise
                self.vectorize = False
                msg = f"vmap over chains failed ({type(exc).__name__}: {exc}); looping"
                warnings.warn(msg, RuntimeWarning, stacklevel=4)
                self.warned.append(msg)
        if self.full_batch:
            return torch.stack([self.fm.loss(w[c], xb, yb) for c in range(w.shape[0])])
        return torch.stack([self.fm.loss(w[c], xb[c], yb[c]) for c in range(w.shape[0])])

    def _chain_losses(self, params: dict, xb, yb) -> torch.Tensor:
        """The model's own all-chains forward, then the loss vmapped over chains."""
        chains = next(iter(params.values())).shape[0]
        if self.full_batch:
            xb, yb = (t.expand(chains, *t.shape) for t in (xb, yb))
        return self._vmapped_loss(self.forward_chains(params, xb), yb)

    def _ref_losses(self, xb, yb) -> torch.Tensor:
        with torch.no_grad():
            if self.forward_chains is not None:
                w0 = self.fm.w0.expand(len(xb), -1)
                return self._chain_losses(self.fm.split(w0), xb, yb)
            if self.vectorize:
                return self._vmapped_ref(self._w0_params, xb, yb)
            return torch.stack([self.fm.loss(self.fm.w0, xb[c], yb[c]) for c in range(len(xb))])

    # -- one group of chains ---------------------------------------------------------------
    def run(self, chains, num_burnin, num_draws, gen, desc, verbose):
        """Returns loss / reference traces (C, D[, K]), divergence flags and MALA rates (C,)."""
        fm, dev = self.fm, self.fm.w0.device
        w0 = fm.w0
        w = w0.expand(chains, -1).clone().requires_grad_(True)
        multi = self.l0.dim() == 1
        l0_drive = self.l0.mean() if multi else self.l0
        trace_shape = (chains, num_draws) + tuple(self.l0.shape)
        loss_trace = torch.zeros(trace_shape, dtype=fm.dtype, device=dev)
        ref_trace = torch.zeros(trace_shape, dtype=fm.dtype, device=dev) if self.paired else None
        # max over steps of each chain's loss above w*'s (on the same minibatch when paired,
        # so that minibatch scatter at large losses is not read as divergence); NaN
        # propagates through torch.maximum
        worst = torch.full((chains,), -math.inf, dtype=fm.dtype, device=dev)
        acc_sum = torch.zeros(chains, dtype=torch.float64, device=dev)
        acc_count = 0
        noise = torch.empty_like(w0.expand(chains, -1))
        v = None  # RMSprop second moment
        prev = None  # (w, drift, potential, precond) one step before a MALA check
        total = num_burnin + num_draws
        for step in progress(range(total), desc=desc, total=total, verbose=verbose):
            if self.full_batch:
                xb, yb = self.x, self.y
            else:
                idx = torch.randint(self.n, (chains * self.batch_size,), generator=gen, device=dev)
                # index_select on the flat index: several times faster than x[idx] on CPU
                xb, yb = (
                    t.index_select(0, idx).view(chains, self.batch_size, *t.shape[1:])
                    for t in (self.x, self.y)
                )
            losses = self._losses(w, xb, yb)
            if step == 0:
                _check_loss(losses[0])
            drive = losses.mean(-1) if multi else losses
            (grad,) = torch.autograd.grad(drive.sum(), w)
            with torch.no_grad():
                drive = drive.detach()
                draw = step - num_burnin
                ref = self._ref_losses(xb, yb) if self.paired else None
                ref_drive = l0_drive if ref is None else (ref.mean(-1) if multi else ref)
                torch.maximum(worst, drive - ref_drive, out=worst)
                if draw >= 0:
                    loss_trace[:, draw] = losses.detach()
                    if ref is not None:
                        ref_trace[:, draw] = ref
                if step % 100 == 99 and not bool((worst < self.limit).any()):
                    break  # every chain has diverged: stop early, the caller raises
                precond = None
                if self.sampler == "rmsprop_sgld":
                    grad.mul_(self.nbeta)
                    if v is None:
                        v = grad * grad
                    else:
                        v.mul_(self.rms_alpha).addcmul_(grad, grad, value=1 - self.rms_alpha)
                    precond = (v.sqrt() + self.rms_eps).reciprocal_()
                    grad.div_(self.nbeta)
                check = self.mala_every and draw >= 0 and step % self.mala_every == 0
                keep = self.mala_every and draw >= -1 and (step + 1) % self.mala_every == 0
                drift = None
                if check or keep:
                    drift = (w - w0).mul_(self.gamma).add_(grad, alpha=self.nbeta)
                    # U = nbeta L + gamma/2 |w - w*|^2; paired: L read relative to w* on the
                    # same batch, which removes most of the minibatch noise from U differences
                    level = drive - ref_drive if ref is not None else drive
                    potential = self.nbeta * level + 0.5 * self.gamma * (w - w0).pow(2).sum(-1)
                    if check and prev is not None:
                        state = (w, drift, potential, precond)
                        acc_sum += _mala_acceptance(prev, state, 0.5 * self.eps)
                        acc_count += 1
                    prev = (w.detach().clone(), drift, potential, precond) if keep else None
                self._update(w, w0, grad, drift, precond, noise, gen)
        acc = acc_sum / acc_count if acc_count else torch.full_like(acc_sum, math.nan)
        bad = ~(worst < self.limit)  # also True for NaN
        return {"loss_trace": loss_trace, "ref_trace": ref_trace, "bad": bad, "acc": acc}

    def _update(self, w, w0, grad, drift, precond, noise, gen):
        """One SGLD step in place. ``grad`` is grad L (not scaled); ``drift`` = grad U if
        already formed."""
        eps, gamma = self.eps, self.gamma
        torch.randn(noise.shape, generator=gen, out=noise, device=noise.device)
        if precond is None:
            if drift is None:
                # w - (eps/2)(nbeta grad + gamma (w - w*)) as three fused in-place passes
                shrink = 0.5 * eps * gamma
                w.mul_(1.0 - shrink).add_(w0, alpha=shrink).add_(
                    grad, alpha=-0.5 * eps * self.nbeta
                )
            else:
                w.add_(drift, alpha=-0.5 * eps)
            w.add_(noise, alpha=math.sqrt(eps))
        else:
            if drift is None:
                drift = grad.mul_(self.nbeta).add_(w - w0, alpha=gamma)
            w.addcmul_(precond, drift, value=-0.5 * eps)
            # out of place: a MALA check one step later still reads this step's G
            w.addcmul_(precond.sqrt().mul_(math.sqrt(eps)), noise)
