"""Modular arithmetic tasks (Power et al. 2022; Nanda et al. 2023; Varma et al. 2023).

Every example is the token sequence ``[a, b, =]`` with a, b in {0..p-1} and the ``=`` token
numbered p; the label is ``op(a, b) mod p``. The full table has p^2 examples, ordered by
``index = a * p + b``. A training set is a random subset of D of those indices; the test set
is the rest. Several models trained together (different seeds, sizes D or label tables) are
packed into one :class:`ModularBatch` with padding, so one vectorised step trains them all.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

OPERATIONS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
}


def all_pairs(p: int, operation: str = "add") -> tuple[torch.Tensor, torch.Tensor]:
    """Every (a, b) pair once: tokens (p^2, 3) int64 ``[a, b, p]`` and labels (p^2,) int64."""
    if p < 2:
        raise ValueError(f"p must be >= 2, got {p}")
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; choose one of {sorted(OPERATIONS)}")
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return tokens, OPERATIONS[operation](a, b, p)


def split_indices(n_total: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n_total)``: D training indices and the other test ones.

    Both are sorted int64 tensors; the same (n_total, d, seed) always gives the same split,
    and a larger d with the same seed gives a superset (one permutation, cut at d).
    """
    if not 0 < d <= n_total:
        raise ValueError(f"need 0 < D <= {n_total}, got D = {d}")
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm[:d].sort().values, perm[d:].sort().values


def subset_indices(indices: torch.Tensor, d: int, seed: int) -> torch.Tensor:
    """A seeded random subset of size ``d`` of ``indices`` (sorted), e.g. for ungrokking."""
    if not 0 < d <= len(indices):
        raise ValueError(f"need 0 < D' <= {len(indices)}, got D' = {d}")
    perm = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    return indices[perm[:d]].sort().values


def random_labels(p: int, seed: int) -> torch.Tensor:
    """A label table (p^2,) drawn uniformly from {0..p-1}: only memorisation can fit it."""
    return torch.randint(0, p, (p * p,), generator=torch.Generator().manual_seed(seed))


@dataclass
class ModularBatch:
    """M training problems over the same p^2 table, padded to a common training size.

    Shapes: M models, N = max D, T = p^2.
    """

    train_tokens: torch.Tensor  # (M, N, 3) int64, padding rows repeat a real example
    train_labels: torch.Tensor  # (M, N) int64
    train_weight: torch.Tensor  # (M, N) float32, 1/D_m on real rows, 0 on padding
    eval_tokens: torch.Tensor  # (T, 3) int64, the whole table
    eval_labels: torch.Tensor  # (M, T) int64, each model's label table
    train_mask: torch.Tensor  # (M, T) bool, the pairs model m trains on
    sizes: torch.Tensor  # (M,) int64, D_m

    def to(self, device) -> "ModularBatch":
        """The same batch with every tensor on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def num_models(self) -> int:
        return self.train_tokens.shape[0]

    @property
    def test_mask(self) -> torch.Tensor:
        """(M, T) bool: every pair model m does not train on."""
        return ~self.train_mask


def make_batch(
    tokens: torch.Tensor,
    label_tables: Sequence[torch.Tensor],
    train_indices: Sequence[torch.Tensor],
) -> ModularBatch:
    """Pack M problems: model m trains on ``tokens[train_indices[m]]`` with ``label_tables[m]``.

    tokens: (T, 3); label_tables: M tensors (T,); train_indices: M int64 index tensors.
    """
    if len(label_tables) != len(train_indices) or not train_indices:
        raise ValueError("need one label table per training set, and at least one of each")
    n_max = max(len(idx) for idx in train_indices)
    padded, weights, masks = [], [], []
    for idx in train_indices:
        d = len(idx)
        # Pad by repeating the first example: its weight is 0, so the loss is unchanged.
        padded.append(torch.cat([idx, idx[:1].expand(n_max - d)]))
        weights.append(torch.cat([torch.full((d,), 1.0 / d), torch.zeros(n_max - d)]))
        mask = torch.zeros(len(tokens), dtype=torch.bool)
        mask[idx] = True
        masks.append(mask)
    padded = torch.stack(padded)
    labels = torch.stack(list(label_tables))
    return ModularBatch(
        train_tokens=tokens[padded],
        train_labels=torch.gather(labels, 1, padded),
        train_weight=torch.stack(weights),
        eval_tokens=tokens,
        eval_labels=labels,
        train_mask=torch.stack(masks),
        sizes=torch.tensor([len(idx) for idx in train_indices]),
    )
