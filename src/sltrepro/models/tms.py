"""Toy model of superposition (Elhage et al. 2022) in the sparse limit of Chen et al. (2023).

Model: x -> ReLU(W^T W x + b), W (r, c), b (c,), c features through r hidden dimensions.
Inputs (Chen et al. 2023, eq. 2, "the high sparsity limit"): exactly one feature i, chosen
uniformly among the c, is on, with magnitude mu ~ U[0, 1]. Loss per sample: the squared
error summed over the c outputs, ||x - f(x)||^2; the population loss L(W, b) is its mean.

For x = mu e_i the output j is ReLU(mu G_ji + b_j) with G = W^T W, so L is a sum of one-
dimensional integrals of piecewise-quadratic functions of mu, written here in closed form
(our own derivation; Chen et al.'s Lemma 3.1 states the same loss as H / (3c)):

    c L = c/3 + sum_{i,j} T(G_ij, b_j) - 2 sum_i M(G_ii, b_i),
    T(a, b) = int_0^1 ReLU(a mu + b)^2 dmu,   M(a, b) = int_0^1 mu ReLU(a mu + b) dmu.

Regular k-gons (k columns of length l at angles 2 pi j / k, bias b on them, the other c - k
columns zero) are critical points; each zero column i is "dead" (b_i < 0, output 0) or
"positive" (b_i = 1/(2c), the constant output that minimises its own squared error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class ToyModel(nn.Module):
    """x -> ReLU(W^T W x + b). ``forward`` maps (B, c) -> (B, c)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        if weight.dim() != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(f"need W (r, c) and b (c,), got {weight.shape} and {bias.shape}")
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.weight.T @ self.weight + self.bias)

    @staticmethod
    def forward_chains(params: dict, x: torch.Tensor) -> torch.Tensor:
        """All chains at once: weight (C, r, c), bias (C, c), x (C, B, c) -> (C, B, c)."""
        w, b = params["weight"], params["bias"]
        return torch.relu(torch.bmm(torch.bmm(x, w.transpose(1, 2)), w) + b[:, None, :])


def squared_error(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||x - out||^2 (summed over features): the paper's loss."""
    return (out - x).pow(2).sum(-1).mean()


def sample_inputs(n: int, c: int, generator: torch.Generator, dtype=torch.float64):
    """(n, c) inputs of the sparse limit: one uniform feature on, magnitude U[0, 1]."""
    feature = torch.randint(c, (n,), generator=generator)
    mu = torch.rand(n, generator=generator, dtype=dtype)
    x = torch.zeros(n, c, dtype=dtype)
    x[torch.arange(n), feature] = mu
    return x


# ----------------------------------------------------------------------------- closed form
def _positive_part_moments(a: torch.Tensor, b: torch.Tensor):
    """(T, M): int_0^1 ReLU(a mu + b)^2 dmu and int_0^1 mu ReLU(a mu + b) dmu, elementwise.

    a mu + b > 0 on an interval [lo, hi] of [0, 1]; both integrals are polynomials in its
    ends, which keeps the gradient exact (the integrand vanishes at the moving end).
    """
    safe = torch.where(a == 0, torch.ones_like(a), a)
    root = (-b / safe).clamp(0.0, 1.0)
    lo = torch.where(a > 0, root, torch.zeros_like(a))
    hi = torch.where(a < 0, root, torch.ones_like(a))
    hi = torch.where(a == 0, (b > 0).to(a.dtype), hi)
    d1, d2, d3 = hi - lo, hi**2 - lo**2, hi**3 - lo**3
    t = a * a * d3 / 3 + a * b * d2 + b * b * d1
    m = a * d3 / 3 + b * d2 / 2
    return t, m


def population_loss(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Closed-form population loss L(W, b); weight (..., r, c), bias (..., c) -> (...)."""
    c = weight.shape[-1]
    gram = weight.transpose(-1, -2) @ weight  # (..., c, c), gram[i, j] = W_i . W_j
    t, _ = _positive_part_moments(gram, bias[..., None, :].expand_as(gram))
    diag = torch.diagonal(gram, dim1=-2, dim2=-1)
    _, m = _positive_part_moments(diag, bias)
    return (c / 3 + t.sum((-1, -2)) - 2 * m.sum(-1)) / c


def monte_carlo_loss(weight, bias, n: int, generator: torch.Generator) -> tuple[float, float]:
    """(mean, standard error) of ||x - f(x)||^2 over n fresh inputs: the closed form's check."""
    x = sample_inputs(n, weight.shape[-1], generator, dtype=weight.dtype)
    err = (torch.relu(x @ weight.T @ weight + bias) - x).pow(2).sum(-1)
    return float(err.mean()), float(err.std() / math.sqrt(n))


# ----------------------------------------------------------------------------- k-gons
POSITIVE = "+"
DEAD = "-"
DEAD_BIAS = -0.5  # any b < 0 kills a zero column; far enough from 0 to stay dead under noise


def kgon_params(k: int, c: int, length, bias, extras: str, rotation: float = 0.0):
    """(W (2, c), b (c,)) of a regular k-gon; ``length`` and ``bias`` may be 0-d tensors
    (differentiable), the dtype follows them (float64 for Python numbers)."""
    length = torch.as_tensor(length, dtype=torch.float64)
    bias = torch.as_tensor(bias, dtype=length.dtype)
    angles = rotation + 2 * math.pi * torch.arange(k, dtype=length.dtype) / k
    ring = torch.stack([torch.cos(angles), torch.sin(angles)])
    weight = torch.cat([length * ring, torch.zeros(2, c - k, dtype=length.dtype)], 1)
    extra = [1 / (2 * c) if s == POSITIVE else DEAD_BIAS for s in extras]
    return weight, torch.cat([bias.expand(k), torch.tensor(extra, dtype=length.dtype)])


@dataclass(frozen=True)
class KGon:
    """A regular k-gon among c features: columns 0..k-1 on the polygon, the rest zero.

    ``extras`` has one sign per zero column: "+" (bias 1/(2c)) or "-" (dead, bias < 0).
    """

    k: int
    c: int
    length: float
    bias: float
    extras: str

    @property
    def name(self) -> str:
        return phase_name(self.k, self.extras)

    def params(self, rotation: float = 0.0):
        """(W (2, c), b (c,)) float64, turned by ``rotation`` radians."""
        return kgon_params(self.k, self.c, self.length, self.bias, self.extras, rotation)


def solve_kgon(k: int, c: int, extras: str = "", *, tol: float = 1e-13) -> KGon:
    """The k-gon critical point: (length, bias) minimising the closed-form loss on the
    2-parameter k-gon family (damped Newton in float64 from the square's (1, 0)).

    Whether the result is critical in all 3c directions is a separate check (the gradient
    of :func:`population_loss`).
    """
    if len(extras) != c - k or set(extras) - {POSITIVE, DEAD}:
        raise ValueError(f"extras must be c - k = {c - k} signs from '+-', got {extras!r}")
    if k == 0:  # no polygon: only the zero columns' biases
        return KGon(k, c, 0.0, 0.0, extras)
    if k == 4:  # the square: orthogonal neighbours, reconstruction exact at (1, 0)
        return KGon(k, c, 1.0, 0.0, extras)

    def loss(p):
        return population_loss(*kgon_params(k, c, p[0], p[1], extras))

    x = torch.tensor([1.0, 0.0], dtype=torch.float64)
    for _ in range(200):
        grad = torch.func.grad(loss)(x)
        if float(grad.abs().max()) < tol:
            break
        step = torch.linalg.solve(torch.func.hessian(loss)(x), grad)
        x = x - step.clamp(-0.1, 0.1)
    return KGon(k, c, float(x[0]), float(x[1]), extras)


def classify(weight: torch.Tensor, bias: torch.Tensor, *, alive: float = 0.5) -> tuple[int, str]:
    """(k, extras) of a parameter: k columns longer than ``alive``; each other column "+" if
    its bias is positive, "-" otherwise (sorted "+" first, as in :class:`KGon`).

    weight (r, c), bias (c,). Says nothing about how regular the polygon is.
    """
    norms = torch.linalg.vector_norm(weight, dim=0)
    on = norms > alive
    signs = sorted(POSITIVE if float(b) > 0 else DEAD for b in bias[~on])
    return int(on.sum()), "".join(signs)


def phase_name(k: int, extras: str) -> str:
    return f"{k}{extras}"


def angle_gaps(weight: np.ndarray, alive: float = 0.5) -> np.ndarray:
    """Sorted angular gaps (radians) between the alive columns of W (2, c)."""
    cols = weight[:, np.linalg.norm(weight, axis=0) > alive]
    angles = np.sort(np.arctan2(cols[1], cols[0]))
    if len(angles) == 0:
        return np.array([])
    return np.diff(np.concatenate([angles, [angles[0] + 2 * np.pi]]))
