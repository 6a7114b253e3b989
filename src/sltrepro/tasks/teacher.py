"""Noiseless or noisy regression data from a known linear teacher."""

import torch


def teacher_dataset(
    teacher: torch.Tensor,
    n: int,
    *,
    low: float = -10.0,
    high: float = 10.0,
    noise_std: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x ~ Uniform[low, high]^d and targets y = x @ teacher.T (+ Gaussian noise).

    teacher: (out, in) matrix. Returns x: (n, in) and y: (n, out), float32.
    """
    gen = torch.Generator().manual_seed(seed)
    d_in = teacher.shape[1]
    x = low + (high - low) * torch.rand(n, d_in, generator=gen)
    y = x @ teacher.T.to(x.dtype)
    if noise_std > 0:
        y = y + noise_std * torch.randn(y.shape, generator=gen)
    return x, y
