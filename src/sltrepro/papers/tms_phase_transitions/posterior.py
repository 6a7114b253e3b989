"""The Bayesian posterior of the toy model at sample size n, sampled with MALA.

Posterior (Chen et al. 2023, Sec. 5): p_n(w) ∝ exp(-n L_n(w)) phi(w), L_n the mean over the n
training inputs of ||x - f(x)||^2 and phi a Gaussian prior N(0, prior_std^2 I) on (W, b).
Metropolis-adjusted Langevin (MALA) makes the chains exact for that target whatever the
step size, so the only question about the samples is mixing, which the caller checks.

Kernel in the blackjax style: an immutable state and a pure ``step(state, ...) -> (state,
info)``; all C chains live in one state, one step is a handful of batched tensor ops.
"""

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MALAState:
    """C chains: weight (C, r, c), bias (C, c); log density and its gradients, (C,) etc."""

    weight: torch.Tensor
    bias: torch.Tensor
    logp: torch.Tensor
    grad_weight: torch.Tensor
    grad_bias: torch.Tensor


@dataclass(frozen=True)
class MALAInfo:
    acceptance: torch.Tensor  # (C,) Metropolis-Hastings acceptance probability
    accepted: torch.Tensor  # (C,) bool


def log_posterior(weight, bias, x, prior_std: float) -> torch.Tensor:
    """(C,) -n L_n(w) - |w|^2 / (2 prior_std^2); weight (C, r, c), bias (C, c), x (n, c)."""
    hidden = torch.einsum("nc,krc->knr", x, weight)
    out = torch.relu(torch.bmm(hidden, weight) + bias[:, None, :])
    sse = (out - x).pow(2).sum((-1, -2))
    prior = (weight.pow(2).sum((-1, -2)) + bias.pow(2).sum(-1)) / (2 * prior_std**2)
    return -sse - prior


def init(weight, bias, x, prior_std: float) -> MALAState:
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    logp = log_posterior(w, b, x, prior_std)
    gw, gb = torch.autograd.grad(logp.sum(), (w, b))
    return MALAState(w.detach(), b.detach(), logp.detach(), gw, gb)


def step(state: MALAState, x, prior_std: float, step_size: torch.Tensor, gen) -> tuple:
    """One MALA step of every chain; step_size (C,) is each chain's epsilon (the proposal is
    N(w + (eps/2) grad log p, eps I))."""
    eps_w, eps_b = step_size[:, None, None], step_size[:, None]
    noise_w = torch.randn(state.weight.shape, generator=gen, dtype=state.weight.dtype)
    noise_b = torch.randn(state.bias.shape, generator=gen, dtype=state.bias.dtype)
    prop_w = state.weight + 0.5 * eps_w * state.grad_weight + eps_w.sqrt() * noise_w
    prop_b = state.bias + 0.5 * eps_b * state.grad_bias + eps_b.sqrt() * noise_b
    proposal = init(prop_w, prop_b, x, prior_std)

    def log_q(to_w, to_b, frm: MALAState):  # log N(to; frm + (eps/2) grad, eps I) + const
        dw = to_w - frm.weight - 0.5 * eps_w * frm.grad_weight
        db = to_b - frm.bias - 0.5 * eps_b * frm.grad_bias
        return -(dw.pow(2).sum((-1, -2)) + db.pow(2).sum(-1)) / (2 * step_size)

    log_ratio = (
        proposal.logp
        - state.logp
        + log_q(state.weight, state.bias, proposal)
        - log_q(prop_w, prop_b, state)
    )
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    acceptance = log_ratio.clamp(max=0.0).exp()
    accepted = torch.rand(acceptance.shape, generator=gen, dtype=acceptance.dtype) < acceptance

    def pick(new, old):
        mask = accepted.view(-1, *([1] * (new.dim() - 1)))
        return torch.where(mask, new, old)

    new = MALAState(*(pick(getattr(proposal, f), getattr(state, f)) for f in _FIELDS))
    return new, MALAInfo(acceptance, accepted)


_FIELDS = ("weight", "bias", "logp", "grad_weight", "grad_bias")


def adapt_step_size(step_size, acceptance, target: float = 0.57, rate: float = 0.05):
    """Robbins-Monro in log step size towards the MALA-optimal acceptance (per chain)."""
    return step_size * torch.exp(rate * (acceptance - target))
