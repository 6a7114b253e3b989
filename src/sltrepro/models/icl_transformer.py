"""The in-context linear-regression transformer of Raventós et al. 2023 / Hoogland et al. 2024.

Tokens (P4): each x_k becomes [0, x_k1..x_kD] and each y_k becomes [y_k, 0..0], alternating
x_1, y_1, ..., x_K, y_K (2K tokens of size D + 1). The network predicts the next token; the
prediction of y_k is the first component of its output at the x_k position. Architecture:
linear token embedding (no bias) plus learned absolute positions, L pre-LayerNorm blocks of
causal multi-head attention (no biases in the QKV and output projections) and a ReLU MLP,
a final LayerNorm and a linear unembedding back to D + 1 numbers. With D = 4, K = 8,
d_model = 64, 4 heads, 2 layers and MLP width 64 this has 51,717 parameters.
"""

import torch
from torch import nn
from torch.nn import functional as F


def encode(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """xs (B, K, D), ys (B, K) -> tokens (B, 2K, D + 1): [0, x_k] then [y_k, 0, ..., 0]."""
    batch, num_examples, dim = xs.shape
    x_tok = torch.cat([torch.zeros_like(xs[..., :1]), xs], -1)
    y_tok = torch.cat([ys[..., None], torch.zeros_like(xs)], -1)
    return torch.stack([x_tok, y_tok], 2).reshape(batch, 2 * num_examples, dim + 1)


class Block(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, d_mlp: int):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.ln_attn = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d_model))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention; x (B, T, d_model) -> (B, T, d_model)."""
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, -1)
        heads = (batch, length, self.num_heads, width // self.num_heads)
        q, k, v = (t.reshape(heads).transpose(1, 2) for t in (q, k, v))
        # explicit softmax attention: torch.func.vmap (LLC chains) has no batching rule for the
        # fused CPU kernel of F.scaled_dot_product_attention and would loop over chains
        scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        mixed = F.softmax(scores, -1) @ v
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class ICLTransformer(nn.Module):
    """Tokens (B, 2K, D + 1) -> predictions of y_1..y_K, (B, K)."""

    def __init__(
        self,
        dim: int = 4,
        num_examples: int = 8,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_mlp: int = 64,
    ):
        super().__init__()
        self.dim, self.num_examples = dim, num_examples
        self.embed = nn.Linear(dim + 1, d_model, bias=False)
        self.pos = nn.Parameter(torch.randn(2 * num_examples, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, d_mlp) for _ in range(num_layers))
        self.ln_final = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, dim + 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[-1] != self.dim + 1:
            raise ValueError(f"tokens must be (B, T, {self.dim + 1}), got {tuple(tokens.shape)}")
        if tokens.shape[1] > 2 * self.num_examples:
            raise ValueError(f"at most {2 * self.num_examples} tokens, got {tokens.shape[1]}")
        h = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        out = self.unembed(self.ln_final(h))
        return out[:, 0::2, 0]  # y_k is predicted at the x_k token

    def layer_norms(self) -> dict[str, nn.LayerNorm]:
        """Every LayerNorm by name, for the weight-collapse metric."""
        return {name: m for name, m in self.named_modules() if isinstance(m, nn.LayerNorm)}


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
