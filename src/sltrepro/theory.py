"""Exact learning coefficients to test estimates against.

All values are exact ``fractions.Fraction``. Widths are input-first throughout:
``widths = [H_1 (input), H_2, ..., H_{L+1} (output)]`` for ``W_L ... W_1``.
"""

from fractions import Fraction
from itertools import combinations
from math import ceil


def regular_lambda(num_params: int) -> tuple[Fraction, int]:
    """A regular model with ``d`` parameters: lambda = d/2, multiplicity 1."""
    if num_params < 0:
        raise ValueError(f"num_params must be >= 0, got {num_params}")
    return Fraction(num_params, 2), 1


def normal_crossing_lambda(powers) -> tuple[Fraction, int]:
    """K(w) = prod_i w_i^(2 k_i) under a prior positive at 0: lambda = min 1/(2 k_i).

    ``powers`` are the k_i (non-negative integers; a zero means w_i does not enter K).
    The multiplicity is the number of i attaining the minimum. Example: the model
    y = w1 * w2^3 * x has K ∝ w1^2 w2^6, so powers (1, 3) give lambda 1/6, m 1.
    """
    ks = [int(k) for k in powers]
    if any(k < 0 for k in ks) or not any(ks):
        raise ValueError(f"powers must be non-negative with at least one positive: {powers}")
    candidates = [Fraction(1, 2 * k) for k in ks if k > 0]
    lam = min(candidates)
    return lam, candidates.count(lam)


def isotropic_lambda(dim: int, k: int) -> Fraction:
    """K(w) = |w|^(2k) in ``dim`` dimensions: lambda = dim / (2k)."""
    if dim < 1 or k < 1:
        raise ValueError(f"need dim >= 1 and k >= 1, got dim={dim}, k={k}")
    return Fraction(dim, 2 * k)


def _check_widths(widths, rank: int) -> list[int]:
    widths = [int(h) for h in widths]
    if len(widths) < 2:
        raise ValueError(f"a network needs at least two widths (input, output), got {widths}")
    if min(widths) < 1:
        raise ValueError(f"every width must be >= 1, got {widths}")
    if not 0 <= rank <= min(widths):
        raise ValueError(f"rank must lie in [0, min(widths) = {min(widths)}], got {rank}")
    return widths


def rank_count_lambda(widths, rank: int) -> Fraction:
    """Half the dimension of the manifold of rank-``rank`` H_{L+1} x H_1 matrices,
    r (H_1 + H_{L+1} - r) / 2: the learning coefficient a predictor that knows nothing of
    SLT would guess from the end-to-end map alone (the null for Aoyagi's lambda; they differ
    only where a hidden layer is a bottleneck)."""
    widths = _check_widths(widths, rank)
    return Fraction(rank * (widths[0] + widths[-1] - rank), 2)


def dln_learning_coefficient(widths, rank: int) -> tuple[Fraction, int]:
    """Aoyagi (2024): the learning coefficient of a deep linear network at a rank-r truth.

    Parameters
    ----------
    widths : sequence of int, length L+1 >= 2
        Layer widths, input first: the network is W_L ... W_1 with W_j of shape
        (widths[j], widths[j-1]).
    rank : int
        Rank r of the true product matrix, 0 <= r <= min(widths).

    Returns
    -------
    (lambda, multiplicity) : (Fraction, int)
    """
    widths = _check_widths(widths, rank)
    r = rank
    m_sorted = sorted(h - r for h in widths)
    for size in range(2, len(m_sorted) + 1):
        inside, outside = m_sorted[:size], m_sorted[size:]
        l = size - 1
        s = sum(inside)
        if outside and not max(inside) < min(outside):
            continue
        if not s >= l * max(inside):
            continue
        if outside and not s < l * min(outside):
            continue
        break
    else:  # pragma: no cover - Aoyagi proves a prefix always qualifies
        raise RuntimeError(f"no index set satisfies Aoyagi's conditions for {widths}, r={r}")
    a = s - (ceil(Fraction(s, l)) - 1) * l
    lam = (
        Fraction(r * (widths[0] + widths[-1]) - r * r, 2)
        + Fraction(a * (l - a), 4 * l)
        - Fraction(l * (l - 1), 4) * Fraction(s, l) ** 2
        + Fraction(sum(mi * mj for mi, mj in combinations(inside, 2)), 2)
    )
    return lam, a * (l - a) + 1


def rrr_learning_coefficient(M: int, H: int, N: int, rank: int) -> tuple[Fraction, int]:
    """Aoyagi & Watanabe (2005): reduced-rank regression, input M, hidden H, output N."""
    _check_widths([M, H, N], rank)
    r = rank
    if N + r <= M + H and M + r <= N + H and H + r <= M + N:
        odd = (M + H + N + r) % 2
        lam = Fraction(2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2 + odd, 8)
        return lam, 2 if odd else 1
    if M + H < N + r:
        return Fraction(H * M - H * r + N * r, 2), 1
    if N + H < M + r:
        return Fraction(H * N - H * r + M * r, 2), 1
    return Fraction(M * N, 2), 1


def saxe_mode_trajectory(t, s: float, u0: float, tau: float = 1.0):
    """Saxe, McClelland & Ganguli (2014): one mode of a two-layer linear net in closed form.

    For the loss (1/2)||W_2 W_1 - A*||_F^2 with whitened inputs and a balanced init aligned
    with the singular vectors of A*, each mode strength u (the product's singular value along
    the target's mode of strength s > 0) obeys tau du/dt = 2u(s - u), solved by

        u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0).

    With gradient descent at learning rate lr, ``t`` in steps and ``tau = 1/lr`` (or t in
    continuous time lr * steps and tau = 1). Accepts scalar or array ``t``; returns float(s).
    """
    import numpy as np

    if s <= 0 or u0 <= 0 or tau <= 0:
        raise ValueError(f"need s, u0, tau > 0, got s={s}, u0={u0}, tau={tau}")
    # Divide through by e^{2st/tau} so large t does not overflow.
    decay = np.exp(-2.0 * s * np.asarray(t, dtype=float) / tau)
    return s / (1.0 - decay + (s / u0) * decay)
