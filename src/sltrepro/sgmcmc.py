"""Stochastic-gradient MCMC update kernels for the localised tempered posterior.

The target, for C chains at once (positions ``(C, P)``), is

    p(w) ∝ exp(-U(w)),   U(w) = nbeta * L(w) + (gamma / 2) * ||w - w*||^2,

with grad U = nbeta * grad L + gamma * (w - w*). Each kernel is a pure step in the style of
blackjax's ``mcmc`` kernels,

    state, info = kernel.step(state, grad, noise)

taking the state, the gradient of L (not of U) at ``state.position`` and a standard normal
draw shaped like the position, and returning a new state and what the step computed on the
way (``StepInfo``). Nothing is modified in place; randomness comes in only through
``noise``, so the caller owns the random stream. Observers (traces, divergence, MALA) read
``info``; :func:`mala_acceptance` is the MALA test of one step.

``form_drift=True`` asks the kernel to form grad U explicitly and report it in ``info``
(MALA needs it). The update is the same formula either way, but it rounds differently: the
plain SGLD update is otherwise fused into three passes over w, and the recorded smoke
baselines pin both roundings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class SGMCMCState:
    """Immutable state of C chains. Tensors are never modified after construction."""

    position: Tensor
    """(C, P) parameters of each chain."""
    second_moment: Tensor | None = None
    """(C, P) RMSprop running mean of (nbeta grad L)^2; None before the first step."""
    momentum: Tensor | None = None
    """(C, P) SGNHT momentum, in position units per step."""
    thermostat: Tensor | None = None
    """(C, 1) SGNHT friction xi."""


@dataclass(frozen=True)
class StepInfo:
    """What one step computed at the old position."""

    drift: Tensor | None = None
    """(C, P) grad U, when the kernel was asked to form it (else None)."""
    precond: Tensor | None = None
    """(C, P) the diagonal preconditioner G the step used (RMSprop-SGLD), else None."""


class SGLD:
    """Langevin dynamics (Welling & Teh 2011):

    w' = w - (eps/2) grad U(w) + sqrt(eps) * noise.
    """

    name = "sgld"
    reports_drift = True

    def __init__(self, anchor: Tensor, *, step_size: float, nbeta: float, localization: float):
        self.anchor, self.eps, self.nbeta, self.gamma = anchor, step_size, nbeta, localization

    def init(self, position: Tensor, draw: Callable[[], Tensor]) -> SGMCMCState:
        del draw  # SGLD starts from the position alone
        return SGMCMCState(position=position)

    def drift(self, position: Tensor, grad: Tensor) -> Tensor:
        """grad U = gamma (w - w*) + nbeta grad L."""
        return (position - self.anchor).mul_(self.gamma).add_(grad, alpha=self.nbeta)

    def step(self, state, grad, noise, *, form_drift=False) -> tuple[SGMCMCState, StepInfo]:
        w, eps = state.position, self.eps
        if form_drift:
            drift = self.drift(w, grad)
            new = w.add(drift, alpha=-0.5 * eps)
        else:
            # w - (eps/2)(nbeta grad + gamma (w - w*)) as three fused passes
            drift, shrink = None, 0.5 * eps * self.gamma
            new = w.mul(1.0 - shrink).add_(self.anchor, alpha=shrink)
            new.add_(grad, alpha=-0.5 * eps * self.nbeta)
        new.add_(noise, alpha=math.sqrt(eps))
        return SGMCMCState(position=new), StepInfo(drift=drift)


class RMSpropSGLD(SGLD):
    """Preconditioned SGLD (pSGLD of Li et al. 2016, without its correction term):

    V' = alpha V + (1 - alpha) (nbeta grad L)^2     (V started at the first square)
    G  = 1 / (sqrt(V') + delta)
    w' = w - (eps/2) G grad U(w) + sqrt(eps G) * noise.
    """

    name = "rmsprop_sgld"

    def __init__(self, anchor, *, step_size, nbeta, localization, alpha=0.99, delta=1.0):
        super().__init__(anchor, step_size=step_size, nbeta=nbeta, localization=localization)
        self.alpha, self.delta = alpha, delta

    def step(self, state, grad, noise, *, form_drift=False) -> tuple[SGMCMCState, StepInfo]:
        w, eps, v = state.position, self.eps, state.second_moment
        scaled = grad.mul(self.nbeta)
        if v is None:
            v = scaled * scaled
        else:
            v = v.mul(self.alpha).addcmul_(scaled, scaled, value=1 - self.alpha)
        precond = (v.sqrt() + self.delta).reciprocal_()
        # grad L as the drift reads it: scaled back (rounds like the recorded baselines)
        grad = scaled.div_(self.nbeta)
        if form_drift:
            drift = self.drift(w, grad)
            step_drift = drift
        else:
            drift, step_drift = None, grad.mul_(self.nbeta).add_(w - self.anchor, alpha=self.gamma)
        new = w.addcmul(precond, step_drift, value=-0.5 * eps)
        new.addcmul_(precond.sqrt().mul_(math.sqrt(eps)), noise)
        state = SGMCMCState(position=new, second_moment=v)
        return state, StepInfo(drift=drift, precond=precond)


class SGNHT:
    """Stochastic-gradient Nosé-Hoover thermostat (Ding et al. 2014), in the step-size
    units devinterp uses (momentum q = p h, step_size = h^2, thermostat and diffusion
    A times h):

        q'  = q - eps grad U(w) - xi q + sqrt(2 A eps) * noise
        w'  = w + q'
        xi' = xi + mean(q'^2) - eps              (per chain, mean over parameters)

    q starts at sqrt(eps) * N(0, I) and xi at A. The thermostat holds the kinetic energy
    at its equilibrium value, absorbing the unknown minibatch gradient noise.
    """

    name = "sgnht"
    reports_drift = False

    def __init__(self, anchor, *, step_size, nbeta, localization, diffusion=0.01):
        self.anchor, self.eps, self.nbeta, self.gamma = anchor, step_size, nbeta, localization
        self.diffusion = diffusion

    def init(self, position: Tensor, draw: Callable[[], Tensor]) -> SGMCMCState:
        momentum = draw().mul_(math.sqrt(self.eps))
        thermostat = torch.full(
            (position.shape[0], 1), self.diffusion, dtype=position.dtype, device=position.device
        )
        return SGMCMCState(position=position, momentum=momentum, thermostat=thermostat)

    def step(self, state, grad, noise, *, form_drift=False) -> tuple[SGMCMCState, StepInfo]:
        del form_drift  # no MALA test for a momentum sampler
        w, q, xi = state.position, state.momentum, state.thermostat
        drift = (w - self.anchor).mul_(self.gamma).add_(grad, alpha=self.nbeta)
        q = q - self.eps * drift - xi * q + math.sqrt(2 * self.diffusion * self.eps) * noise
        xi = xi + (q.pow(2).mean(-1, keepdim=True) - self.eps)
        return SGMCMCState(position=w + q, momentum=q, thermostat=xi), StepInfo()


KERNELS = {k.name: k for k in (SGLD, RMSpropSGLD, SGNHT)}


def mala_acceptance(prev: tuple, cur: tuple, step_size: float) -> Tensor:
    """(C,) Metropolis-Hastings acceptance probability of the move prev -> cur.

    Each state is (w, drift = grad U, U, G) with G the diagonal preconditioner the step
    from that state used (None for plain SGLD); the proposal from a state is
    N(w - (eps/2) G drift, eps G).
    """
    w_a, drift_a, u_a, g_a = prev
    w_b, drift_b, u_b, g_b = cur
    eps, half_eps = step_size, 0.5 * step_size

    def log_q(to, frm, drift, g):  # log N(to; frm - (eps/2) G drift, eps G), no constants
        if g is None:
            return -(to - frm + half_eps * drift).pow(2).sum(-1) / (2 * eps)
        r = to - frm + half_eps * g * drift
        return -(r.pow(2) / g).sum(-1) / (2 * eps) - 0.5 * g.log().sum(-1)

    log_ratio = (u_a - u_b) + log_q(w_a, w_b, drift_b, g_b) - log_q(w_b, w_a, drift_a, g_a)
    log_ratio = torch.nan_to_num(log_ratio.double(), nan=-math.inf)
    return log_ratio.clamp(max=0.0).exp()
