"""Deep linear networks f(x) = W_L ... W_1 x (no biases), widths input-first."""

import torch
from torch import nn


class DeepLinearNetwork(nn.Module):
    """A product of bias-free linear layers.

    Parameters
    ----------
    widths : sequence of int, length L+1
        ``[input, hidden..., output]``; layer j maps widths[j] -> widths[j+1].
    """

    def __init__(self, widths):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"need >= 2 positive widths, got {widths}")
        self.widths = widths
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    @classmethod
    def from_weights(cls, weights) -> "DeepLinearNetwork":
        """Build from matrices W_1, ..., W_L (each of shape (out, in))."""
        widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
        net = cls(widths)
        with torch.no_grad():
            for layer, w in zip(net.layers, weights, strict=True):
                layer.weight.copy_(torch.as_tensor(w, dtype=layer.weight.dtype))
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, widths[0]) -> (batch, widths[-1])."""
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_chains(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """Many parameter sets at once, for the LLC estimator's chains.

        params: ``{"layers.j.weight": (C, widths[j+1], widths[j])}``; x: (C, B, widths[0]).
        Returns (C, B, widths[-1]). Activations are carried transposed, (C, width, B), so
        that every ``bmm`` reads the weights in their stored layout: the weight gradients
        then come out contiguous, which is markedly faster on CPU than ``x @ W^T``.
        """
        h = x.transpose(1, 2)
        for j in range(len(self.layers)):
            h = torch.bmm(params[f"layers.{j}.weight"], h)
        return h.transpose(1, 2)

    def product(self) -> torch.Tensor:
        """The end-to-end matrix W_L ... W_1, shape (widths[-1], widths[0])."""
        out = self.layers[0].weight
        for layer in self.layers[1:]:
            out = layer.weight @ out
        return out

    def num_params(self) -> int:
        return sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:], strict=True))


def sample_widths(
    gen: torch.Generator, *, min_width: int, max_width: int, min_depth: int, max_depth: int
) -> list[int]:
    """Random DLN widths as in Furman & Lau (2024): depth L ~ U{min_depth..max_depth} layers,
    each of the L+1 widths ~ U{min_width..max_width}. Returns ``[input, hidden..., output]``.
    """
    if not (1 <= min_width <= max_width and 1 <= min_depth <= max_depth):
        raise ValueError(
            f"need 1 <= min <= max for widths ({min_width}, {max_width}) "
            f"and depths ({min_depth}, {max_depth})"
        )
    depth = int(torch.randint(min_depth, max_depth + 1, (), generator=gen))
    return torch.randint(min_width, max_width + 1, (depth + 1,), generator=gen).tolist()


def random_low_rank_weights(
    widths, gen: torch.Generator, *, cut_prob: float = 0.5
) -> tuple[list[torch.Tensor], list[int]]:
    """Standard-initialised layers, each rank-cut with probability ``cut_prob``.

    Every W_j (shape (widths[j+1], widths[j])) starts as nn.Linear's default init,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). With probability ``cut_prob`` its k smallest
    singular values are set to zero, k ~ U{1..min(shape)-1} (at least rank 1 survives, so
    the truth is never the zero map). Returns float32 weights W_1..W_L and each layer's
    intended rank.
    """
    weights, ranks = [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        bound = fan_in**-0.5
        w = (torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        full = min(fan_in, fan_out)
        rank = full
        cut = float(torch.rand((), generator=gen)) < cut_prob
        if cut and full > 1:
            rank = full - int(torch.randint(1, full, (), generator=gen))
            u, s, vh = torch.linalg.svd(w, full_matrices=False)
            s[rank:] = 0.0
            w = (u * s) @ vh
        weights.append(w.float())
        ranks.append(rank)
    return weights, ranks


def numerical_rank(matrix: torch.Tensor) -> int:
    """Rank with torch's default float32 tolerance (sigma_max * max(shape) * eps_float32).

    The product is formed in float32 as the network computes it; singular values that were
    zeroed come back at ~1e-7 relative and fall below this tolerance.
    """
    return int(torch.linalg.matrix_rank(matrix.float()))
