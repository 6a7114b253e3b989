"""Minibatch SGD of a stack of toy models of superposition, all seeds at once.

The S models of a stack share nothing but the step counter: each has its own training set,
its own initialisation and its own stream of minibatch indices (one generator per seed),
and the loss is the sum of each model's own mean squared error, so each gets exactly its
own gradient. Training the stack is the same arithmetic as training each seed alone.
"""

from dataclasses import dataclass

import numpy as np
import torch

from sltrepro.models.tms import population_loss
from sltrepro.progress import progress

INDEX_CHUNK = 1000  # minibatch indices are drawn per seed this many steps at a time


@dataclass
class SGDHistory:
    """Logged every ``steps[t]``; S = seeds, T = logged steps."""

    steps: np.ndarray  # (T,)
    loss: np.ndarray  # (S, T) closed-form population loss
    train_loss: np.ndarray  # (S, T) mean squared error on the seed's training set
    weight: np.ndarray  # (S, T, r, c)
    bias: np.ndarray  # (S, T, c)


def stack_loss(weight, bias, x) -> torch.Tensor:
    """(S,) mean over each seed's batch of ||x - f(x)||^2; weight (S, r, c), bias (S, c),
    x (S, B, c)."""
    hidden = torch.bmm(x, weight.transpose(1, 2))
    out = torch.relu(torch.bmm(hidden, weight) + bias[:, None, :])
    return (out - x).pow(2).sum(-1).mean(-1)


def train_stack(
    weight: torch.Tensor,
    bias: torch.Tensor,
    data: torch.Tensor,
    seeds,
    *,
    lr: float,
    batch_size: int,
    num_steps: int,
    log_steps,
    desc: str = "sgd",
    verbose: bool = True,
) -> SGDHistory:
    """Plain SGD (no momentum) from weight (S, r, c), bias (S, c) on data (S, n, c).

    ``seeds`` (S ints) seed each model's minibatch stream (indices drawn with replacement).
    """
    weight = weight.detach().clone().requires_grad_(True)
    bias = bias.detach().clone().requires_grad_(True)
    num, n = data.shape[0], data.shape[1]
    if len(seeds) != num or weight.shape[0] != num or bias.shape[0] != num:
        raise ValueError("weight, bias, data and seeds must have one entry per model")
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    log_steps = sorted(set(int(s) for s in log_steps))
    logged = {"loss": [], "train_loss": [], "weight": [], "bias": []}
    rows = torch.arange(num)[:, None]
    indices = None

    def log():
        with torch.no_grad():
            logged["loss"].append(population_loss(weight, bias).numpy())
            logged["train_loss"].append(stack_loss(weight, bias, data).numpy())
            logged["weight"].append(weight.numpy().copy())
            logged["bias"].append(bias.numpy().copy())

    next_log = iter(log_steps)
    due = next(next_log, None)
    for step in progress(range(num_steps + 1), desc=desc, total=num_steps + 1, verbose=verbose):
        if step == due:
            log()
            due = next(next_log, None)
        if step == num_steps:
            break
        if step % INDEX_CHUNK == 0:
            indices = torch.stack(
                [torch.randint(n, (INDEX_CHUNK, batch_size), generator=g) for g in gens], 1
            )  # (chunk, S, B)
        batch = data[rows, indices[step % INDEX_CHUNK]]  # (S, B, c)
        loss = stack_loss(weight, bias, batch).sum()
        grad_w, grad_b = torch.autograd.grad(loss, (weight, bias))
        with torch.no_grad():
            weight.sub_(grad_w, alpha=lr)
            bias.sub_(grad_b, alpha=lr)
    return SGDHistory(
        steps=np.array(log_steps),
        loss=np.stack(logged["loss"], 1),
        train_loss=np.stack(logged["train_loss"], 1),
        weight=np.stack(logged["weight"], 1),
        bias=np.stack(logged["bias"], 1),
    )
