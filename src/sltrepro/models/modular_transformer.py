"""The one-layer transformer of Nanda et al. (2023) and Varma et al. (2023, App. A).

Token + learned position embeddings, one causal attention layer (H heads of size d_head, no
biases), a ReLU MLP with biases, untied unembedding, no LayerNorm. Inputs are ``[a, b, =]``
(3 tokens, vocabulary p + 1) and only the last position's logits (p classes) are read.

Parameters are plain tensors in a dict; a *stack* of M models keeps a leading (M,) axis on
every tensor so that :func:`stacked_logits` evaluates all M at once with ``torch.func.vmap``.

Two exact ways to compute the last position's logits:

* :func:`full_logits` runs every position through the whole network (the textbook model);
* :func:`last_logits` uses that, with a single layer, position i's key and value depend only
  on (token_i, i): it computes keys, values and the query on the (p + 1)-token vocabulary
  once per step, gathers them per example, and runs the MLP and unembedding only at the
  final position. It equals :func:`full_logits` up to float rounding and is several times
  cheaper on a CPU.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

SEQ_LEN = 3  # [a, b, =]


@dataclass(frozen=True)
class TransformerShape:
    """Sizes of the model; the paper's are p=113, d_model 128, 4 heads x 32, d_mlp 512."""

    p: int
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512

    @property
    def vocab(self) -> int:
        return self.p + 1  # the residues and the "=" token


def param_shapes(shape: TransformerShape) -> dict[str, tuple[int, ...]]:
    """Name -> shape of one model's parameters."""
    s = shape
    return {
        "W_E": (s.vocab, s.d_model),
        "W_pos": (SEQ_LEN, s.d_model),
        "W_Q": (s.n_heads, s.d_model, s.d_head),
        "W_K": (s.n_heads, s.d_model, s.d_head),
        "W_V": (s.n_heads, s.d_model, s.d_head),
        "W_O": (s.n_heads, s.d_head, s.d_model),
        "W_in": (s.d_model, s.d_mlp),
        "b_in": (s.d_mlp,),
        "W_out": (s.d_mlp, s.d_model),
        "b_out": (s.d_model,),
        "W_U": (s.d_model, s.p),
    }


def init_params(shape: TransformerShape, n_models: int, seeds) -> dict[str, torch.Tensor]:
    """A stack of M freshly initialised models, (M, ...) per tensor, float32.

    As in Nanda et al.'s code: weights ~ N(0, 1/d_model) (the unembedding N(0, 1/vocab)),
    biases 0. ``seeds`` is an int (model m gets seed + m) or a sequence of M ints.
    """
    seeds = [seeds + m for m in range(n_models)] if isinstance(seeds, int) else list(seeds)
    if len(seeds) != n_models:
        raise ValueError(f"need {n_models} seeds, got {len(seeds)}")
    models = [_init_one(shape, seed) for seed in seeds]
    return {k: torch.stack([m[k] for m in models]) for k in models[0]}


def _init_one(shape: TransformerShape, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(int(seed))
    params = {}
    for name, size in param_shapes(shape).items():
        if name.startswith("b_"):
            params[name] = torch.zeros(size)
        else:
            fan = shape.vocab if name == "W_U" else shape.d_model
            params[name] = torch.randn(size, generator=gen) / math.sqrt(fan)
    return params


def full_logits(params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """One model, every position computed: tokens (N, 3) -> last-position logits (N, p)."""
    x = params["W_E"][tokens] + params["W_pos"]  # (N, 3, d)
    q = torch.einsum("npd,hde->nhpe", x, params["W_Q"])
    k = torch.einsum("npd,hde->nhpe", x, params["W_K"])
    v = torch.einsum("npd,hde->nhpe", x, params["W_V"])
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (N, H, 3, 3)
    causal = torch.ones(SEQ_LEN, SEQ_LEN, dtype=torch.bool, device=x.device).tril()
    attn = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    x = x + torch.einsum("nhpe,hed->npd", attn @ v, params["W_O"])
    x = x + _mlp(params, x)
    return (x @ params["W_U"])[:, -1]


def last_logits(params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """One model, only the last position computed: tokens (N, 3) -> logits (N, p).

    Exact: the last position attends to all 3 positions, and position i's key/value are
    functions of (token_i, i) alone, so they are tabulated on the vocabulary (3 x (p+1) rows).
    """
    n_heads, d_model, d_head = params["W_Q"].shape
    last = SEQ_LEN - 1
    resid = params["W_E"] + params["W_pos"][:, None, :]  # (3, V, d): every (pos, token)

    # index_select (backward: index_add) is far cheaper on a CPU than advanced indexing.
    def table(pos: int, weight: torch.Tensor) -> torch.Tensor:  # (N, H, e)
        tab = resid[pos] @ weight.permute(1, 0, 2).reshape(d_model, n_heads * d_head)
        return tab.index_select(0, tokens[:, pos]).view(-1, n_heads, d_head)

    q = table(last, params["W_Q"])
    k = torch.stack([table(i, params["W_K"]) for i in range(SEQ_LEN)], dim=2)  # (N, H, 3, e)
    v = torch.stack([table(i, params["W_V"]) for i in range(SEQ_LEN)], dim=2)
    scores = torch.einsum("nhe,nhpe->nhp", q, k) / math.sqrt(d_head)
    z = torch.einsum("nhp,nhpe->nhe", scores.softmax(dim=-1), v)
    x = resid[last].index_select(0, tokens[:, last])
    x = x + z.reshape(-1, n_heads * d_head) @ params["W_O"].reshape(n_heads * d_head, d_model)
    x = x + _mlp(params, x)
    return x @ params["W_U"]


def _mlp(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return F.relu(x @ params["W_in"] + params["b_in"]) @ params["W_out"] + params["b_out"]


def stacked_logits(params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """M models at once (fast path): tokens (N, 3) shared or (M, N, 3) -> logits (M, N, p)."""
    token_dim = 0 if tokens.dim() == 3 else None
    return vmap(last_logits, in_dims=(0, token_dim))(params, tokens)


def param_norm(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """(M,) L2 norm of all parameters of each model of a stack."""
    return torch.sqrt(sum(t.detach().flatten(1).pow(2).sum(1) for t in params.values()))


def select(params: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """Model m of a stack, as an unstacked dict (a copy on the CPU)."""
    return {k: v[m].detach().to("cpu", copy=True) for k, v in params.items()}


class ModularTransformer(nn.Module):
    """One model as an nn.Module (for tools such as the LLC estimator): tokens -> logits."""

    def __init__(self, params: dict[str, torch.Tensor]):
        super().__init__()
        self.weights = nn.ParameterDict(
            {k: nn.Parameter(v.detach().clone()) for k, v in params.items()}
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, 3) int64 -> last-position logits (N, p)."""
        return last_logits(dict(self.weights), tokens)
