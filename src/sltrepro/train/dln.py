"""Full-batch gradient descent on deep linear networks, many runs at once.

The loss is the whitened population loss of a linear teacher ``A*``:

    L(W_1, ..., W_L) = (1/2) || W_L ... W_1 - A* ||_F^2 = E_x (1/2) || (A - A*) x ||^2,
    x ~ N(0, I),

so the results need no dataset and are exact (no sampling noise). B runs (seeds x init
scales) of one architecture are stacked: layer j is a ``(B, widths[j+1], widths[j])`` tensor
and every step is a handful of batched matmuls. Gradients are written out by hand (the chain
rule through the product) because autograd's per-op overhead dominates at these sizes.

Time units: ``step`` counts gradient steps; continuous (gradient-flow) time is
``t = lr * step``.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sltrepro import checkpoint
from sltrepro.progress import progress


def init_weights(widths, scales, seeds, *, dtype=torch.float64, device="cpu") -> list[torch.Tensor]:
    """Gaussian layers with per-entry std ``scale``, one run per (seed, scale) pair.

    Runs are ordered seed-major: run ``i * len(scales) + j`` has seed ``seeds[i]`` and scale
    ``scales[j]``. Every scale of one seed reuses the same standard-normal draw (common random
    numbers), so differences between scales come from the scale alone.

    Returns W_1, ..., W_L with W_j of shape (B, widths[j], widths[j-1]), B = seeds x scales.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"need >= 2 positive widths, got {widths}")
    scales = torch.as_tensor(list(scales), dtype=dtype)
    if scales.numel() == 0 or not bool((scales > 0).all()):
        raise ValueError(f"init scales must be positive, got {scales.tolist()}")
    layers = [[] for _ in widths[1:]]
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        for j, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            base = torch.randn(n_out, n_in, generator=gen, dtype=dtype)
            layers[j].append(scales[:, None, None] * base)
    return [torch.cat(layer).to(device) for layer in layers]


def end_to_end(weights: list[torch.Tensor]) -> torch.Tensor:
    """The product W_L ... W_1: (B, out, in)."""
    out = weights[0]
    for w in weights[1:]:
        out = w @ out
    return out


def loss_and_grads(weights: list[torch.Tensor], target: torch.Tensor):
    """Loss (1/2)||A - A*||_F^2 per run, (B,), and its gradient for every layer.

    dL/dW_j = (W_L...W_{j+1})^T (A - A*) (W_{j-1}...W_1)^T. Prefix products P_j (width_j x in)
    and suffix products S_j (out x width_j) keep one side thin, so a step costs O(L w^2 d)
    for hidden width w and in/out width d.
    """
    prefix = [None]  # P_1 = identity
    for w in weights[:-1]:
        prefix.append(w if prefix[-1] is None else w @ prefix[-1])
    product = weights[-1] @ prefix[-1] if prefix[-1] is not None else weights[-1]
    residual = product - target
    loss = 0.5 * residual.pow(2).sum(dim=(-2, -1))
    grads = [None] * len(weights)
    suffix = None  # S_L = identity
    for j in range(len(weights) - 1, -1, -1):
        left = residual if suffix is None else suffix.transpose(-2, -1) @ residual
        grads[j] = left if prefix[j] is None else left @ prefix[j].transpose(-2, -1)
        suffix = weights[j] if suffix is None else suffix @ weights[j]
    return loss, grads


def log_spaced_steps(num_steps: int, points_per_decade: int) -> np.ndarray:
    """Steps 0, 1, ... num_steps at about ``points_per_decade`` per decade (unique ints)."""
    if num_steps < 1 or points_per_decade < 1:
        raise ValueError(f"need num_steps >= 1 and points_per_decade >= 1, got {num_steps}")
    count = int(np.ceil(np.log10(num_steps) * points_per_decade)) + 1
    steps = np.unique(np.round(np.logspace(0, np.log10(num_steps), count)).astype(int))
    return np.concatenate([[0], steps])


def numerical_rank(svals: np.ndarray, tol: float) -> np.ndarray:
    """Number of singular values above ``tol`` along the last axis."""
    return (np.asarray(svals) > tol).sum(axis=-1)


@dataclass
class DLNHistory:
    """What :func:`train_dln` logged. B runs, T logged steps, r = min(out, in), K levels."""

    steps: np.ndarray
    """(T,) logged steps (including 0 and the last step)."""
    loss: np.ndarray
    """(B, T) loss (1/2)||A - A*||_F^2 at each logged step."""
    product: np.ndarray
    """(B, T, out, in) the end-to-end map A = W_L ... W_1."""
    svals: np.ndarray
    """(B, T, r) singular values of the end-to-end map, descending."""
    crossings: np.ndarray
    """(B, K) fractional step at which the loss first fell below each level (linear
    interpolation between the two steps around the crossing); NaN if it never did."""
    snapshots: dict = field(default_factory=dict)
    """{step: [W_1, ..., W_L]} weights at the requested snapshot steps (numpy arrays)."""


def _record(weights, loss, log) -> None:
    product = end_to_end(weights)
    log["loss"].append(loss.cpu().numpy())
    log["product"].append(product.cpu().numpy())
    log["svals"].append(torch.linalg.svdvals(product).cpu().numpy())


def train_dln(
    weights: list[torch.Tensor],
    target: torch.Tensor,
    *,
    lr: float,
    num_steps: int,
    log_steps,
    levels=(),
    snapshot_steps=(),
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 20000,
    desc: str = "train dln",
    verbose: bool = True,
) -> DLNHistory:
    """Gradient descent W_j <- W_j - lr * dL/dW_j for ``num_steps`` steps on every run.

    weights: W_1..W_L, each (B, h_{j+1}, h_j), updated in place. target: (out, in).
    log_steps: steps at which loss and singular values are logged (must include 0).
    levels: loss levels whose first crossing is timed at every step (not just logged ones).
    snapshot_steps: steps at which all weights are kept (keep B small if there are many).
    checkpoint_path: when given, the state is saved there every ``checkpoint_every`` steps
    and a run started with the same arguments resumes from it.
    """
    log_steps = np.asarray(sorted(set(int(s) for s in log_steps)))
    if log_steps[0] != 0 or log_steps[-1] > num_steps:
        raise ValueError("log_steps must start at 0 and end at or before num_steps")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    target = target.to(weights[0])
    snapshot_steps = set(int(s) for s in snapshot_steps)
    log = {"loss": [], "product": [], "svals": []}
    # Every step's loss, so level crossings are timed exactly (one copy per step).
    trace = torch.zeros(num_steps + 1, weights[0].shape[0], dtype=weights[0].dtype)
    snapshots = {}
    start = 0
    # A checkpoint from a run with other settings must not be resumed silently.
    signature = (float(lr), int(num_steps), [tuple(w.shape) for w in weights])
    state = checkpoint.load(checkpoint_path) if checkpoint_path else None
    if state is not None:
        if state.get("signature") != signature:
            raise ValueError(
                f"{checkpoint_path} was written by a run with other settings "
                f"({state.get('signature')} != {signature}); delete it to start afresh"
            )
        for w, saved in zip(weights, state["weights"], strict=True):
            w.copy_(saved)
        start, log, trace, snapshots = (
            state["step"],
            state["log"],
            state["trace"],
            state["snapshots"],
        )
    to_log = set(log_steps.tolist())
    for step in progress(range(start, num_steps + 1), desc=desc, verbose=verbose):
        loss, grads = loss_and_grads(weights, target)
        trace[step] = loss
        if step in to_log:
            _record(weights, loss, log)
            if not bool(torch.isfinite(loss).all()):
                raise FloatingPointError(f"loss non-finite at step {step} (lr={lr} too big?)")
        if step in snapshot_steps:
            snapshots[step] = [w.cpu().numpy().copy() for w in weights]
        if step == num_steps:
            break
        for w, g in zip(weights, grads, strict=True):
            w.sub_(lr * g)
        if checkpoint_path and (step + 1) % checkpoint_every == 0:
            checkpoint.save(
                checkpoint_path,
                {
                    "step": step + 1,
                    "signature": signature,
                    "weights": [w.cpu() for w in weights],
                    "log": log,
                    "trace": trace,
                    "snapshots": snapshots,
                },
            )
    return DLNHistory(
        steps=log_steps,
        loss=np.stack(log["loss"], axis=1),
        product=np.stack(log["product"], axis=1),
        svals=np.stack(log["svals"], axis=1),
        crossings=first_crossings(trace.numpy().T, levels),
        snapshots=snapshots,
    )


def first_crossings(trace: np.ndarray, levels) -> np.ndarray:
    """Fractional step at which each run's loss first falls below each level.

    trace: (B, T) loss at steps 0..T-1. Returns (B, K); linear interpolation between the two
    steps around the crossing; NaN where the loss never fell below the level.
    """
    levels = np.asarray(list(levels), dtype=float)
    out = np.full((trace.shape[0], len(levels)), np.nan)
    for k, level in enumerate(levels):
        below = trace < level
        hit = below.any(axis=1) & ~below[:, 0]
        idx = below.argmax(axis=1)
        rows = np.nonzero(hit)[0]
        before, after = trace[rows, idx[rows] - 1], trace[rows, idx[rows]]
        out[rows, k] = idx[rows] - 1 + (before - level) / (before - after)
    return out
