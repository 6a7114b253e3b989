"""One-input regression models y = p(w) x with a monomial p(w) = prod_i w_i^(k_i).

With Gaussian noise the population loss is K(w) ∝ p(w)^2 = prod_i w_i^(2 k_i) around the
truth w* = 0: a normal crossing whose learning coefficient is min_i 1/(2 k_i)
(``sltrepro.theory.normal_crossing_lambda``). Lau et al. 2023, Table 1. Also their
two-minimum potential (``TwoMinimaRegression``), whose true parameters have different
local learning coefficients.
"""

import torch
from torch import nn


class MonomialRegression(nn.Module):
    """y_hat = (prod_i w_i^(k_i)) * x.

    Parameters
    ----------
    powers : sequence of int
        The exponents k_i, one parameter w_i each; e.g. (1, 3) is w1 * w2^3.
    init : sequence of float, optional
        Starting parameters (default all zero: the true parameter of Table 1).
    """

    def __init__(self, powers, init=None):
        super().__init__()
        powers = [int(k) for k in powers]
        if not powers or min(powers) < 0:
            raise ValueError(f"powers must be non-negative ints, got {powers}")
        self.register_buffer("powers", torch.tensor(powers, dtype=torch.float32))
        start = torch.zeros(len(powers)) if init is None else torch.as_tensor(init).float()
        self.weight = nn.Parameter(start.clone())

    def coefficient(self) -> torch.Tensor:
        """p(w), a 0-d tensor."""
        return torch.prod(self.weight**self.powers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 1) -> (batch, 1)."""
        return self.coefficient() * x


def two_minima(w1, w2):
    """f(w) = (w1 - 1)(w1^2 + w2^2)^2, so K(w) ∝ f^2 = (w1 - 1)^2 (w1^2 + w2^2)^4. Zero on
    the line w1 = 1 and at the origin: lambda 1/4 at w* = (0, 0) (|w|^8 in two dimensions),
    1/2 at w* = (1, c), c != 0 (one regular direction). Plain arithmetic: tensors or arrays."""
    return (w1 - 1.0) * (w1**2 + w2**2) ** 2


class TwoMinimaRegression(nn.Module):
    """y_hat = two_minima(w) * x, with parameters starting at ``w_star`` (a true parameter)."""

    def __init__(self, w_star):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(w_star, dtype=torch.float32).clone())
        if self.weight.shape != (2,):
            raise ValueError(f"w_star must have two entries, got {list(w_star)}")

    def coefficient(self) -> torch.Tensor:
        return two_minima(self.weight[0], self.weight[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 1) -> (batch, 1)."""
        return self.coefficient() * x


def monomial_data(
    n: int, *, noise_std: float = 0.5, coefficient: float = 0.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, 1), y = coefficient * x + N(0, noise_std^2); both (n, 1) float32."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=gen)
    y = coefficient * x + noise_std * torch.randn(n, 1, generator=gen)
    return x, y


def gaussian_nll(noise_std: float):
    """The loss_fn for y ~ N(f(x), noise_std^2 I): mean over the batch of
    ||y - f(x)||^2 / (2 noise_std^2) (summed over output dimensions), without constants."""
    scale = 1.0 / (2.0 * noise_std**2)

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).pow(2).sum(-1).mean() * scale

    return loss
