"""The finite-nbeta expectation the LLC estimator targets, by quadrature (two parameters).

For a one-input regression y = f(w) x + N(0, s^2) the empirical loss depends on w only
through f(w):  L_n(w) = (S_yy - 2 f(w) S_xy + f(w)^2 S_xx) / (2 s^2 n)  with S_ab = sum a b.
The SGLD estimator samples the localised tempered posterior

    p(w) ∝ exp( -nbeta (L_n(w) - L_n(w*)) - (gamma/2) ||w - w*||^2 )

and reports nbeta E_p[L_n(w) - L_n(w*)]. For two parameters that expectation is a 2-d
integral: a fine grid over w* ± ``width`` prior standard deviations gives it to ~1e-4
(tests/test_llc_estimator_paper.py compares two grids), which is the reference an estimator
with finite nbeta should match; the asymptotic lambda is its n -> infinity limit.
"""

from collections.abc import Callable

import numpy as np


def sufficient_stats(x, y) -> tuple[float, float, float, int]:
    """(S_xx, S_xy, S_yy, n) of one-input data; x, y: (n, 1) or (n,) arrays/tensors."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return float(x @ x), float(x @ y), float(y @ y), len(x)


def tempered_llc(
    coefficient: Callable[[np.ndarray, np.ndarray], np.ndarray],
    stats: tuple[float, float, float, int],
    *,
    noise_std: float,
    nbeta: float,
    localization: float,
    w_star=(0.0, 0.0),
    width: float = 7.0,
    points: int = 1201,
) -> float:
    """nbeta E_p[L_n(w) - L_n(w*)] under the localised tempered posterior (see module doc).

    ``coefficient(w1, w2)`` is f(w), vectorised over numpy arrays of equal shape. The grid
    spans w*_i ± width / sqrt(localization) with ``points`` points per axis (the tether
    alone puts no mass beyond ~6 of its standard deviations).
    """
    sxx, sxy, syy, n = stats
    half = width / np.sqrt(localization)
    a1 = w_star[0] + np.linspace(-half, half, points)
    a2 = w_star[1] + np.linspace(-half, half, points)
    w1, w2 = np.meshgrid(a1, a2, indexing="ij")
    f = coefficient(w1, w2)
    f_star = float(coefficient(np.array(w_star[0]), np.array(w_star[1])))

    def loss(u):
        return (syy - 2.0 * u * sxy + u**2 * sxx) / (2.0 * noise_std**2 * n)

    delta = loss(f) - loss(f_star)
    log_p = -nbeta * delta - 0.5 * localization * ((w1 - w_star[0]) ** 2 + (w2 - w_star[1]) ** 2)
    p = np.exp(log_p - log_p.max())
    return float(nbeta * (p * delta).sum() / p.sum())


def monomial(powers) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """f(w) = w1^k1 w2^k2 (Table 1's p(w))."""
    k1, k2 = (int(k) for k in powers)
    return lambda w1, w2: w1**k1 * w2**k2


def linear_stats(x, y) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(S_xx = X^T X (in, in), S_xy = X^T Y (in, out), S_yy = ||Y||^2, n) of a linear model's
    data; x: (n, in), y: (n, out). The squared error of any end-to-end map A is a function of
    these alone, so a chain step costs O(in * out) whatever n is."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return x.T @ x, x.T @ y, float((y * y).sum()), len(x)


def mala_dln_reference(
    weights_star: list[list[np.ndarray]],
    stats: list[tuple],
    *,
    nbeta: float,
    localization: float,
    num_chains: int,
    num_steps: int,
    num_burnin: int,
    seed: int,
    target_acceptance: float = 0.57,
) -> dict:
    """nbeta E_p[L_n(w) - L_n(w*)] for deep linear networks by full-batch MALA.

    The same localised tempered posterior the SGLD estimator samples (L_n = mean of
    ||y - W_L...W_1 x||^2 / 2), sampled without discretisation bias: each Langevin proposal
    is Metropolis-adjusted. ``weights_star[s]`` are the true layers (out, in) of dataset s and
    ``stats[s]`` its ``linear_stats``; all S datasets x ``num_chains`` chains run batched.
    Step sizes adapt per chain towards ``target_acceptance`` during burn-in only, so the
    draws after it come from an exact MCMC kernel.

    Returns ``reference`` (S,) per dataset (mean over chains), ``se`` (S,) (std over chains
    / sqrt(chains)), ``acceptance`` (S,) and ``step_size`` (S,) after adaptation.
    """
    import torch

    dt = torch.float64
    gen = torch.Generator().manual_seed(seed)
    S, C = len(weights_star), num_chains
    star = [
        torch.stack([torch.as_tensor(ws[j], dtype=dt) for ws in weights_star])[:, None]
        for j in range(len(weights_star[0]))
    ]  # layer j: (S, 1, out, in)
    sxx = torch.stack([torch.as_tensor(s[0], dtype=dt) for s in stats])  # (S, in, in)
    sxy = torch.stack([torch.as_tensor(s[1], dtype=dt) for s in stats])  # (S, in, out)
    syy = torch.as_tensor([s[2] for s in stats], dtype=dt)[:, None]  # (S, 1)
    n = torch.as_tensor([s[3] for s in stats], dtype=dt)[:, None]

    def product(ws):
        a = ws[0]
        for w in ws[1:]:
            a = w @ a
        return a

    def loss(a):  # (S, C)
        cross = torch.einsum("scoi,sio->sc", a, sxy)
        quad = torch.einsum("scoi,sij,scoj->sc", a, sxx, a)
        return (syy - 2 * cross + quad) / (2 * n)

    loss_star = loss(product(star))
    sxx4, syx4, n4 = sxx[:, None], sxy.transpose(-1, -2)[:, None], n[..., None, None]

    def potential_and_grad(ws):
        # by hand (no autograd: a step is a handful of tiny matmuls, overhead-bound):
        # dL/dA = (A S_xx - S_yx) / n, dL/dW_j = (W_L..W_j+1)^T dL/dA (W_j-1..W_1)^T
        a = product(ws)
        delta = loss(a) - loss_star
        g_a = (a @ sxx4 - syx4) / n4
        grads = []
        for j in range(len(ws)):
            left = None
            for w in ws[j + 1 :]:
                left = w if left is None else w @ left
            right = None
            for w in ws[:j]:
                right = w if right is None else w @ right
            g = g_a if left is None else left.transpose(-1, -2) @ g_a
            g = g if right is None else g @ right.transpose(-1, -2)
            grads.append(nbeta * g + localization * (ws[j] - star[j]))
        tether = sum(((w - s) ** 2).sum((-1, -2)) for w, s in zip(ws, star, strict=True))
        return nbeta * delta + 0.5 * localization * tether, grads, delta

    ws = [s.expand(S, C, *s.shape[2:]).clone() for s in star]
    u, grads, delta = potential_and_grad(ws)
    log_eps = torch.full((S, C), float(np.log(0.1 / nbeta)), dtype=dt)
    total = torch.zeros(S, C, dtype=dt)
    accepted = torch.zeros(S, C, dtype=dt)
    for step in range(num_burnin + num_steps):
        eps = log_eps.exp()[..., None, None]
        noise = [torch.randn(w.shape, generator=gen, dtype=dt) for w in ws]
        prop = [
            w - 0.5 * eps * g + eps.sqrt() * z for w, g, z in zip(ws, grads, noise, strict=True)
        ]
        u_new, grads_new, delta_new = potential_and_grad(prop)
        fwd = sum((z**2).sum((-1, -2)) for z in noise) / 2  # -log q(prop | w), no constants
        back = sum(
            ((w - p + 0.5 * eps * g) ** 2).sum((-1, -2))
            for w, p, g in zip(ws, prop, grads_new, strict=True)
        ) / (2 * eps[..., 0, 0])
        log_alpha = (u - u_new + fwd - back).clamp(max=0.0)
        alpha = log_alpha.exp()
        take = torch.rand(S, C, generator=gen, dtype=dt) < alpha
        mask = take[..., None, None]
        ws = [torch.where(mask, p, w) for p, w in zip(prop, ws, strict=True)]
        grads = [torch.where(mask, gn, g) for gn, g in zip(grads_new, grads, strict=True)]
        u = torch.where(take, u_new, u)
        delta = torch.where(take, delta_new, delta)
        if step < num_burnin:
            log_eps = log_eps + 0.05 * (alpha - target_acceptance)
        else:
            total += nbeta * delta
            accepted += take.to(dt)
    per_chain = (total / num_steps).numpy()
    return {
        "reference": per_chain.mean(1).tolist(),
        "se": (per_chain.std(1, ddof=1) / np.sqrt(C)).tolist() if C > 1 else [float("nan")] * S,
        "acceptance": (accepted / num_steps).mean(1).numpy().tolist(),
        "step_size": log_eps.exp().mean(1).numpy().tolist(),
    }
