"""Full-batch AdamW training of a stack of modular-arithmetic transformers, all at once.

The M models of a stack share nothing but the step counter: the loss is the sum of each
model's own mean cross-entropy, so each gets exactly its own gradient, and AdamW (with a
per-model weight decay) is elementwise. Training M models together is thus the same
arithmetic as training them one by one, with M times fewer Python/op-dispatch overheads.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sltrepro import checkpoint
from sltrepro.models.modular_transformer import param_norm, stacked_logits
from sltrepro.progress import progress
from sltrepro.tasks.modular import ModularBatch


@dataclass(frozen=True)
class AdamWSettings:
    """Full-batch AdamW as in Nanda et al. / Varma et al.: lr 1e-3, betas (0.9, 0.98)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    warmup_steps: int = 10  # linear learning-rate warm-up from lr/warmup to lr


def log_spaced_steps(total: int, count: int) -> list[int]:
    """About ``count`` distinct integer steps in [0, total], log-spaced, always with 0 and total."""
    if total < 1 or count < 2:
        raise ValueError(f"need total >= 1 and count >= 2, got {total}, {count}")
    steps = np.unique(np.round(np.logspace(0, math.log10(total), count - 1)).astype(int))
    return sorted({0, total, *steps.tolist()})


def evaluate(params: dict, batch: ModularBatch) -> dict[str, torch.Tensor]:
    """Per-model (M,) train/test loss and accuracy on the whole table, and parameter norm."""
    with torch.no_grad():
        logits = stacked_logits(params, batch.eval_tokens)  # (M, T, p)
        losses = F.cross_entropy(
            logits.flatten(0, 1), batch.eval_labels.flatten(), reduction="none"
        ).view_as(batch.eval_labels)
        correct = (logits.argmax(-1) == batch.eval_labels).float()
    out = {"param_norm": param_norm(params)}
    for name, mask in (("train", batch.train_mask), ("test", batch.test_mask)):
        count = mask.sum(1).clamp(min=1)
        out[f"{name}_loss"] = (losses * mask).sum(1) / count
        out[f"{name}_acc"] = (correct * mask).sum(1) / count
    return out


def train_loss(params: dict, batch: ModularBatch) -> torch.Tensor:
    """Sum over models of each model's mean cross-entropy on its own training set."""
    logits = stacked_logits(params, batch.train_tokens)  # (M, N, p)
    losses = F.cross_entropy(
        logits.flatten(0, 1), batch.train_labels.flatten(), reduction="none"
    ).view_as(batch.train_labels)
    return (losses * batch.train_weight).sum()


def adamw_step(params, grads, state, step: int, settings: AdamWSettings, weight_decay):
    """One decoupled-weight-decay Adam step in place (as torch.optim.AdamW), per-model wd.

    weight_decay: (M,) tensor; step: 1-based.
    """
    lr = settings.lr * min(1.0, step / max(1, settings.warmup_steps))
    bias1 = 1 - settings.beta1**step
    bias2 = 1 - settings.beta2**step
    with torch.no_grad():
        for name, p in params.items():
            g, m, v = grads[name], state["m"][name], state["v"][name]
            decay = weight_decay.view(-1, *([1] * (p.dim() - 1)))
            p.mul_(1 - lr * decay)
            m.lerp_(g, 1 - settings.beta1)
            v.mul_(settings.beta2).addcmul_(g, g, value=1 - settings.beta2)
            denom = (v / bias2).sqrt_().add_(settings.eps)
            p.addcdiv_(m, denom, value=-lr / bias1)


def train(
    params: dict,
    batch: ModularBatch,
    *,
    steps: int,
    weight_decay,
    settings: AdamWSettings = AdamWSettings(),
    log_steps: list[int] | None = None,
    snapshot_steps: list[int] = (),
    checkpoint_path=None,
    checkpoint_every: int = 1000,
    desc: str = "train",
) -> tuple[dict, pd.DataFrame, dict]:
    """Train the stack ``params`` (M models) on ``batch`` for ``steps`` full-batch steps.

    weight_decay: a float or M floats. Metrics are logged at ``log_steps`` (default: 100
    log-spaced steps) and the parameters copied at ``snapshot_steps``. With a
    ``checkpoint_path`` the state is saved every ``checkpoint_every`` steps and an
    interrupted run resumes from it. Returns (params, history with one row per (step,
    model), {step: params}).
    """
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    device = next(iter(params.values())).device
    wd = torch.as_tensor(weight_decay, dtype=torch.float32, device=device)
    wd = wd.expand(batch.num_models).clone()
    log_steps = set(log_steps if log_steps is not None else log_spaced_steps(steps, 100))
    state = {
        "m": {k: torch.zeros_like(v) for k, v in params.items()},
        "v": {k: torch.zeros_like(v) for k, v in params.items()},
    }
    rows, snapshots, start = [], {}, 0
    saved = checkpoint.load(checkpoint_path) if checkpoint_path else None
    if saved is not None:
        with torch.no_grad():
            for k in params:
                params[k].copy_(saved["params"][k])
        state = {key: {k: v.to(device) for k, v in saved["state"][key].items()} for key in state}
        rows, snapshots, start = saved["rows"], saved["snapshots"], saved["step"]
    for step in progress(range(start, steps + 1), desc=desc, initial=start, total=steps + 1):
        if step in log_steps:
            rows.extend(_rows(step, evaluate(params, batch)))
        if step in snapshot_steps:
            snapshots[step] = {k: v.detach().clone() for k, v in params.items()}
        if step == steps:
            break
        grads = torch.autograd.grad(train_loss(params, batch), list(params.values()))
        adamw_step(params, dict(zip(params, grads, strict=True)), state, step + 1, settings, wd)
        if checkpoint_path and (step + 1) % checkpoint_every == 0:
            checkpoint.save(
                checkpoint_path,
                {
                    "params": params,
                    "state": state,
                    "rows": rows,
                    "snapshots": snapshots,
                    "step": step + 1,
                },
            )
    final = {k: v.detach() for k, v in params.items()}
    return final, pd.DataFrame(rows), snapshots


def _rows(step: int, metrics: dict[str, torch.Tensor]) -> list[dict]:
    values = {k: v.tolist() for k, v in metrics.items()}
    n_models = len(next(iter(values.values())))
    return [
        {"step": step, "model": m, **{k: v[m] for k, v in values.items()}} for m in range(n_models)
    ]
