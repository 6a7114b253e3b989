"""A two-layer attention-only transformer language model (Hoogland et al. 2024, Sec. 4; the
architecture of Elhage et al. 2021 / Olsson et al. 2022).

Token and learned absolute position embeddings, ``n_layers`` residual attention blocks (no
MLPs), each with pre-LayerNorm, a final LayerNorm and an untied unembedding. At the paper's
shape (vocab 5000, d_model 256, 8 heads x 32, context 1024) it has ~3.4M parameters.
``layer_norm=False`` drops every LayerNorm, so weights can be written by hand (tests build an
exact induction circuit that way).

Everything is plain tensor algebra (no fused attention kernel), so ``torch.func.vmap`` can
batch it over LLC chains and the attention patterns can be returned for head scores.
"""

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Causal multi-head self-attention without biases."""

    def __init__(self, d_model: int, n_heads: int, d_head: int):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head, bias=False)
        self.out = nn.Linear(n_heads * d_head, d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, d_model), mask: (T, T) bool, True above the diagonal.

        Returns the output (B, T, d_model) and the pattern (B, H, T, T), rows = queries.
        """
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.d_head).unbind(2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.d_head)
        pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v).reshape(b, t, -1)
        return self.out(z), pattern


class AttnOnlyLM(nn.Module):
    """tokens (B, T) int64 -> logits (B, T, vocab_size); T <= context."""

    def __init__(
        self,
        vocab_size: int,
        *,
        d_model: int,
        n_heads: int,
        d_head: int,
        context: int,
        n_layers: int = 2,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(context, d_model))
        norm = nn.LayerNorm if layer_norm else lambda d: nn.Identity()
        self.norms = nn.ModuleList(norm(d_model) for _ in range(n_layers))
        self.blocks = nn.ModuleList(Attention(d_model, n_heads, d_head) for _ in range(n_layers))
        self.final_norm = norm(d_model)
        self.unembed = nn.Linear(d_model, vocab_size, bias=False)
        mask = torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.run(tokens)[0]

    def run(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, V) and each layer's attention pattern (B, H, T, T)."""
        t = tokens.shape[-1]
        if t > self.context:
            raise ValueError(f"sequence length {t} exceeds the context {self.context}")
        x = self.embed(tokens) + self.pos[:t]
        mask = self.mask[:t, :t]
        patterns = []
        for norm, block in zip(self.norms, self.blocks, strict=True):
            out, pattern = block(norm(x), mask)
            x = x + out
            patterns.append(pattern)
        return self.unembed(self.final_norm(x)), patterns

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def previous_token_scores(model: AttnOnlyLM, tokens: torch.Tensor) -> torch.Tensor:
    """(layers, heads) mean attention of each query q >= 1 on key q - 1; tokens (B, T)."""
    _, patterns = model.run(tokens)
    return torch.stack([p.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, -1)) for p in patterns])


@torch.no_grad()
def induction_scores(
    model: AttnOnlyLM,
    vocab_size: int,
    half: int,
    num: int,
    generator: torch.Generator,
    *,
    tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """(layers, heads) prefix-matching score (Olsson et al. 2022).

    On ``num`` sequences made of ``half`` uniformly random tokens repeated twice, the mean
    attention that each query q in the second half (q >= half) pays to key q - half + 1: the
    token after the previous occurrence of the current token. An induction head scores near
    1; a head that attends uniformly scores about 1 / q. ``tokens`` (1-D ids) limits the
    draw to those ids, e.g. the ones that occur in training: a token never trained on keeps
    its initial embedding, which no learned head matches (default: all ``vocab_size``).
    """
    if tokens is None:
        first = torch.randint(vocab_size, (num, half), generator=generator)
    else:
        first = tokens[torch.randint(len(tokens), (num, half), generator=generator)]
    _, patterns = model.run(torch.cat([first, first], dim=1))
    q = torch.arange(half, 2 * half)
    return torch.stack([p[..., q, q - half + 1].mean((0, -1)) for p in patterns])


def head_mask(model: AttnOnlyLM, layer: int, head: int) -> dict[str, torch.Tensor]:
    """The weights of one attention head, as ``restrict=`` masks for the weight-refined LLC
    (:func:`sltrepro.llc.estimate_llc`): {parameter name: bool tensor of its shape}.

    Head h of layer l owns the rows of ``blocks.l.qkv.weight`` that make its query, key and
    value (rows s * H * d_head + h * d_head + [0, d_head) for s = q, k, v, the order
    :meth:`Attention.forward` splits them in) and the columns h * d_head + [0, d_head) of
    ``blocks.l.out.weight`` that read its output: 4 * d_head * d_model weights.
    """
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer {layer} out of range: the model has {len(model.blocks)}")
    block = model.blocks[layer]
    if not 0 <= head < block.n_heads:
        raise ValueError(f"head {head} out of range: layer {layer} has {block.n_heads}")
    width, own = block.n_heads * block.d_head, slice(head * block.d_head, (head + 1) * block.d_head)
    qkv = torch.zeros(block.qkv.weight.shape, dtype=torch.bool)
    qkv.view(3, width, -1)[:, own] = True
    out = torch.zeros(block.out.weight.shape, dtype=torch.bool)
    out[:, own] = True
    return {f"blocks.{layer}.qkv.weight": qkv, f"blocks.{layer}.out.weight": out}
