"""Furman & Lau (2024): lambda_hat is invariant under layer rescaling of ReLU networks.

For a ReLU layer, relu(alpha z) = alpha relu(z) for alpha > 0, so scaling the hidden
layer's weights and bias by alpha and the next layer's weights by 1/alpha leaves the function,
hence the population loss, unchanged. The map is a linear diffeomorphism of parameter space
carrying w* to w*_alpha and L to itself, so the learning coefficient is the same at every
alpha. The estimator is not invariant by construction: its localisation gamma/2 |w - w*|^2
and its step size are isotropic in the parameters, which the rescaling stretches by alpha
and 1/alpha. The paper finds the estimate invariant all the same.

The null is a degeneracy measure without the symmetry: the trace of the Hessian of L_n at w*,
the usual sharpness measure, which the rescaling changes (Dinh et al. 2017, "Sharp minima can
generalize for deep nets"): the second layer's block scales by alpha^2, the first's by
alpha^-2.

Method: a random ReLU teacher (nn.Linear default init) with one hidden layer; data
x ~ U[-10, 10]^{d_in}, noiseless targets; loss = MSE over batch and outputs, nbeta = n / log n.
Its K rescaled copies w*_alpha are estimated in one stacked SGLD run
(``estimate_llc_trajectory``), each chain tethered to its own w*_alpha.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from sltrepro.health import health_metrics
from sltrepro.llc import LLCDivergenceError, default_nbeta, estimate_llc_trajectory

from .pipeline import INPUT_RANGE, mse, sampler_settings


class ReLUNet(nn.Module):
    """f(x) = W_2 relu(W_1 x + b_1) + b_2; ``widths`` = [d_in, hidden, d_out]."""

    def __init__(self, widths):
        super().__init__()
        d_in, hidden, d_out = widths
        self.hidden = nn.Linear(d_in, hidden)
        self.out = nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def rescaled(state: dict, alpha: float) -> dict:
    """The parameters with the hidden layer (weights and bias) times alpha and the output
    weights times 1/alpha: the same function for every alpha > 0."""
    if not alpha > 0:
        raise ValueError(f"rescaling factor must be > 0, got {alpha}")
    out = {k: v.clone() for k, v in state.items()}
    out["hidden.weight"] *= alpha
    out["hidden.bias"] *= alpha
    out["out.weight"] /= alpha
    return out


def teacher_and_data(widths, num_samples: int, seed: int):
    """A random ReLU teacher (default init, seeded) and n noiseless samples from it:
    x (n, d_in) ~ U[-10, 10], y = teacher(x)."""
    torch.manual_seed(seed)
    teacher = ReLUNet(widths)
    gen = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(num_samples, widths[0], generator=gen) * 2 - 1) * INPUT_RANGE
    with torch.no_grad():
        y = teacher(x)
    return teacher, (x, y)


def hessian_trace(model: nn.Module, state: dict, data) -> float:
    """tr of the Hessian of the full-data MSE at ``state`` (exact: one row per parameter)."""
    names = list(state)
    shapes = [state[k].shape for k in names]
    sizes = [state[k].numel() for k in names]
    flat = torch.cat([state[k].reshape(-1) for k in names]).double()
    x, y = (t.double() for t in data)
    model = model.double()

    def loss(theta):
        views = (p.view(s) for p, s in zip(theta.split(sizes), shapes, strict=True))
        parts = dict(zip(names, views, strict=True))
        return mse(functional_call(model, parts, (x,)), y)

    hess = torch.autograd.functional.hessian(loss, flat)
    model.float()
    return float(torch.diagonal(hess).sum())


def rescaling_experiment(config: dict, device, log) -> dict:
    """lambda_hat and tr(Hessian) at every w*_alpha of ``config['rescaling']``; returns the
    metrics: per-alpha values, the largest relative change of each against alpha = 1, and
    the health of the K estimates (stem ``rescaling_``)."""
    cfg = config["rescaling"]
    alphas = [float(a) for a in cfg["alphas"]]
    if 1.0 not in alphas:
        raise ValueError(f"rescaling alphas must include 1 (the reference), got {alphas}")
    teacher, data = teacher_and_data(cfg["widths"], cfg["num_samples"], config["seed"])
    base = {k: v.detach() for k, v in teacher.state_dict().items()}
    states = [rescaled(base, a) for a in alphas]
    settings = sampler_settings(config["llc"], cfg, default_nbeta(cfg["num_samples"]))
    try:
        results = estimate_llc_trajectory(
            teacher, states, mse, data, settings, seed=config["seed"], device=device, verbose=False
        )
    except LLCDivergenceError as err:
        log.warning("every chain of some rescaled copy diverged: %s", err)
        results = err.results
    traces = [hessian_trace(teacher, s, data) for s in states]
    ref = alphas.index(1.0)
    llcs = np.array([r.llc_mean for r in results])
    ses = np.array([r.llc_std / math.sqrt(r.num_chains) for r in results])
    llc_change = np.abs(llcs / llcs[ref] - 1)
    trace_change = np.abs(np.array(traces) / traces[ref] - 1)
    z = np.abs(llcs - llcs[ref]) / np.sqrt(ses**2 + ses[ref] ** 2 + 1e-300)
    metrics = {
        "rescaling_num_params": sum(v.numel() for v in base.values()),
        "rescaling_max_rel_change_llc": float(np.max(llc_change)),
        "rescaling_max_rel_change_hessian_trace": float(np.max(trace_change)),
        "rescaling_max_z_llc": float(np.max(z)),
        "rescaling_llc_rel_se": float(np.max(ses / np.abs(llcs))),
    }
    for alpha, res, trace in zip(alphas, results, traces, strict=True):
        tag = f"{alpha:g}".replace(".", "p")
        metrics[f"rescaling_llc_alpha_{tag}"] = res.llc_mean
        metrics[f"rescaling_hessian_trace_alpha_{tag}"] = trace
        metrics[f"rescaling_acceptance_alpha_{tag}"] = res.summary_row()["mala_acceptance"]
        log.info(
            "alpha %g: lambda_hat %.3f (se %.3f), tr H %.4g",
            alpha,
            res.llc_mean,
            res.llc_std / math.sqrt(res.num_chains),
            trace,
        )
    rows = [r.summary_row() for r in results]
    metrics |= health_metrics(rows, "rescaling_", labels=[f"alpha {a:g}" for a in alphas])
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }
