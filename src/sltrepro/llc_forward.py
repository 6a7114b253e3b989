"""A model as a loss of one flat parameter vector, evaluated for many chains at once.

:class:`FlatModel` sees the trainable parameters of a model as one vector (P,); a
:class:`ChainForward` evaluates the loss of C such vectors, ``(C, P)``, on their minibatches.
The way it does so is chosen once, by :func:`choose_forward`, before sampling starts:

- the model's own ``forward_chains(params, x)`` (a dict of ``(C, *shape)`` parameters,
  inputs ``(C, B, ...)`` -> outputs ``(C, B, ...)``), used whenever every parameter is
  trainable and the model has no buffers (deep linear networks: a chain of ``bmm``);
- ``torch.func.vmap`` of ``functional_call`` over the chains;
- a loop over chains, when vmap cannot batch the model (found by one trial call on two
  samples, with a warning) or when asked for. Same arithmetic, same random numbers.

:class:`CompiledLosses` optionally compiles the chosen ``losses`` with ``torch.compile``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from sltrepro.device import resolve_device


class FlatModel:
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

    def flat_mask(self, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(P,) bool: the coordinates of the flat vector that ``masks`` selects.

        ``masks`` maps names of trainable parameters to bool tensors of their shapes (True:
        sampled); a parameter not named is not selected at all. ``ValueError`` for an
        unknown or frozen name, a mask of another shape or dtype, or nothing selected.
        """
        if not isinstance(masks, Mapping) or not masks:
            raise ValueError("restrict must be a non-empty mapping {parameter name: bool mask}")
        shapes = dict(zip(self.names, self.shapes, strict=True))
        for name, mask in masks.items():
            if name not in shapes:
                why = "is frozen (requires_grad=False)" if name in self.consts else "is unknown"
                raise ValueError(
                    f"restrict: parameter {name!r} {why}; the trainable parameters are {self.names}"
                )
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise ValueError(f"restrict: the mask of {name!r} must be a bool tensor, got {got}")
            if mask.shape != shapes[name]:
                raise ValueError(
                    f"restrict: the mask of {name!r} has shape {tuple(mask.shape)}, the "
                    f"parameter {tuple(shapes[name])}"
                )
        flat = torch.cat(
            [
                masks[k].reshape(-1).cpu() if k in masks else torch.zeros(n, dtype=torch.bool)
                for k, n in zip(self.names, self.numels, strict=True)
            ]
        ).to(self.w0.device)
        if not flat.any():
            raise ValueError(f"restrict: the masks of {sorted(masks)} select no parameter")
        return flat

    def loss_params(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.model, {**params, **self.consts}, (x,)), y)

    def loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_params(self.split(flat), x, y)


def checkpoint_params(fm: FlatModel, checkpoint, index: int) -> torch.Tensor:
    """(P,) the trainable parameters of one checkpoint of ``fm``'s model, flattened as
    ``fm.w0``: from a module of the same architecture or a state dict.

    A module must also hold the same frozen parameters and buffers as ``fm``'s model
    (they are shared by every chain). ``ValueError`` names the first mismatch.
    """
    where = f"checkpoint {index}"
    if isinstance(checkpoint, nn.Module):
        named = {k: p for k, p in checkpoint.named_parameters() if p.requires_grad}
        if list(named) != fm.names:
            raise ValueError(
                f"{where}: trainable parameters {list(named)} differ from the model's {fm.names}"
            )
        others = {k: p for k, p in checkpoint.named_parameters() if not p.requires_grad}
        others.update(dict(checkpoint.named_buffers()))
        if set(others) != set(fm.consts):
            raise ValueError(
                f"{where}: frozen parameters and buffers {sorted(others)} differ from the "
                f"model's {sorted(fm.consts)}"
            )
        for k, v in others.items():
            const = fm.consts[k]
            if v.shape != const.shape or not torch.equal(v.detach().to(const.device), const):
                raise ValueError(
                    f"{where}: frozen parameter or buffer {k!r} differs from the model's "
                    "(every chain shares them; only trainable parameters may change)"
                )
    elif isinstance(checkpoint, Mapping):
        missing = [k for k in fm.names if k not in checkpoint]
        if missing:
            raise ValueError(f"{where}: state dict lacks trainable parameters {missing}")
        named = {k: checkpoint[k] for k in fm.names}
    else:
        raise ValueError(f"{where}: expected an nn.Module or a state dict, got {type(checkpoint)}")
    for k, shape in zip(fm.names, fm.shapes, strict=True):
        p = named[k]
        if not isinstance(p, torch.Tensor) or p.shape != shape or p.dtype != fm.dtype:
            got = (tuple(p.shape), p.dtype) if isinstance(p, torch.Tensor) else type(p)
            raise ValueError(
                f"{where}: parameter {k!r} is {got}, the model's is {(tuple(shape), fm.dtype)}"
            )
    return torch.cat([named[k].detach().reshape(-1) for k in fm.names]).to(fm.w0.device)


def check_loss(value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() > 1:
        raise ValueError(
            "loss_fn must return a scalar (mean loss over the batch) or a 1-D tensor of "
            f"per-component mean losses; got {getattr(value, 'shape', type(value))}"
        )
    return value


def check_data(data) -> tuple[torch.Tensor, torch.Tensor]:
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
    ``loss_fn`` is a mean over samples (as :func:`sltrepro.llc.estimate_llc` requires).
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    fm = FlatModel(model, loss_fn, dev)
    x, y = check_data(data)
    return flat_full_loss(fm, fm.w0, x.to(dev), y.to(dev), eval_batch_size)


def flat_full_loss(fm: FlatModel, w: torch.Tensor, x, y, chunk: int) -> torch.Tensor:
    n = x.shape[0]
    total = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            part = check_loss(fm.loss(w, x[start : start + chunk], y[start : start + chunk]))
            part = part.detach().double() * min(chunk, n - start)
            total = part if total is None else total + part
    return (total / n).to(fm.dtype)


class ChainForward:
    """Losses of all chains: ``losses(w (C, P), xb, yb) -> (C,)`` or ``(C, K)``, and
    ``ref_losses(xb, yb[, w0])``, the loss of w* (default ``fm.w0``) on each chain's
    minibatch (no gradient). xb/yb
    are ``(C, B, ...)``, or the full data shared by every chain when ``full_batch``."""

    def __init__(self, fm: FlatModel, full_batch: bool):
        self.fm, self.full_batch = fm, full_batch

    def losses(self, w: torch.Tensor, xb, yb) -> torch.Tensor:
        fm = self.fm
        if self.full_batch:
            return torch.stack([fm.loss(w[c], xb, yb) for c in range(w.shape[0])])
        return torch.stack([fm.loss(w[c], xb[c], yb[c]) for c in range(w.shape[0])])

    def ref_losses(self, xb, yb, w0=None) -> torch.Tensor:
        w0 = self.fm.w0 if w0 is None else w0
        with torch.no_grad():
            return torch.stack([self.fm.loss(w0, xb[c], yb[c]) for c in range(len(xb))])


class VmapForward(ChainForward):
    """``functional_call`` vmapped over the chains (parameters split into views outside)."""

    def __init__(self, fm: FlatModel, full_batch: bool):
        super().__init__(fm, full_batch)
        data_dims = None if full_batch else 0
        self._batched = vmap(
            fm.loss_params, in_dims=(0, data_dims, data_dims), randomness="different"
        )
        self._ref = vmap(fm.loss_params, in_dims=(None, 0, 0), randomness="different")

    def losses(self, w, xb, yb):
        return self._batched(self.fm.split(w), xb, yb)

    def ref_losses(self, xb, yb, w0=None):
        with torch.no_grad():
            return self._ref(self.fm.split(self.fm.w0 if w0 is None else w0), xb, yb)


class ModelChainsForward(ChainForward):
    """The model's own all-chains ``forward_chains``, then ``loss_fn`` vmapped over chains."""

    def __init__(self, fm: FlatModel, full_batch: bool):
        super().__init__(fm, full_batch)
        self._loss = vmap(fm.loss_fn, randomness="different")

    def _chain_losses(self, params: dict, xb, yb):
        chains = next(iter(params.values())).shape[0]
        if self.full_batch:
            xb, yb = (t.expand(chains, *t.shape) for t in (xb, yb))
        return self._loss(self.fm.forward_chains(params, xb), yb)

    def losses(self, w, xb, yb):
        return self._chain_losses(self.fm.split(w), xb, yb)

    def ref_losses(self, xb, yb, w0=None):
        with torch.no_grad():
            w0 = (self.fm.w0 if w0 is None else w0).expand(len(xb), -1)
            return self._chain_losses(self.fm.split(w0), xb, yb)


def choose_forward(
    fm: FlatModel, x, y, *, full_batch: bool, vectorize: bool | None
) -> tuple[ChainForward, str | None]:
    """The chain forward for this model, chosen once; and a warning when vmap was tried
    (``vectorize=None``) and failed on a two-sample trial, so the chains loop."""
    if fm.forward_chains is not None and vectorize is not False:
        return ModelChainsForward(fm, full_batch), None
    if vectorize is False:
        return ChainForward(fm, full_batch), None
    forward = VmapForward(fm, full_batch)
    if vectorize:
        return forward, None
    w = fm.w0[None]
    xb, yb = (x[:2], y[:2]) if full_batch else (x[None, :2], y[None, :2])
    try:
        with torch.no_grad():
            forward.losses(w, xb, yb)
    except Exception as exc:  # vmap cannot batch some models: loop instead
        msg = f"vmap over chains failed ({type(exc).__name__}: {exc}); looping"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return ChainForward(fm, full_batch), msg
    return forward, None


class CompiledLosses:
    """``forward.losses`` through ``torch.compile`` (one graph per input shape), eager for
    good once compiling or running the compiled graph raises; ``fallback`` then holds the
    warning, which the estimate reports with its other notes."""

    def __init__(self, forward: ChainForward):
        self.eager = forward.losses
        self.compiled = torch.compile(forward.losses, dynamic=False)
        self.fallback: str | None = None

    def __call__(self, w: torch.Tensor, xb, yb) -> torch.Tensor:
        if self.fallback is None:
            try:
                return self.compiled(w, xb, yb)
            except Exception as exc:  # compilers fail in many ways: eager is always right
                self.fallback = f"torch.compile failed ({type(exc).__name__}: {exc}); eager"
                warnings.warn(self.fallback, RuntimeWarning, stacklevel=2)
        return self.eager(w, xb, yb)
