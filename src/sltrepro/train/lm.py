"""Train a next-token language model with AdamW at a constant learning rate, saving weight
snapshots at chosen steps and resuming after an interruption (Hoogland et al. 2024, LM setup).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from sltrepro import checkpoint
from sltrepro.progress import progress
from sltrepro.tasks.corpus import RepeatSpans, random_windows


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of logits (B, T, V) against targets (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@dataclass
class LMTrainConfig:
    steps: int
    batch_size: int
    context: int
    lr: float
    weight_decay: float
    seed: int
    snapshot_steps: list[int]
    repeat_spans: RepeatSpans | None = None
    """repeated spans put into the training windows (None: plain windows of the stream)"""
    resume_every: int = 500
    log_every: int = 50


def snapshot_path(folder: Path, step: int) -> Path:
    """The weights of checkpoint ``step`` in a folder of snapshots (``outdir/checkpoints``)."""
    return Path(folder) / f"step{step:07d}.pt"


def train_lm(
    model: nn.Module, train_tokens: torch.Tensor, cfg: LMTrainConfig, outdir: Path, log=None
) -> pd.DataFrame:
    """Train ``model`` on random ``context``-token windows of the 1-D ``train_tokens`` (with
    ``cfg.repeat_spans`` put in, drawn from the same generator as the windows).

    Writes the weights at every step in ``cfg.snapshot_steps`` (step 0 = initialisation) to
    ``outdir/checkpoints/stepNNNNNNN.pt`` and returns the training-loss history (step, loss
    in nats per token). The full state (model, optimiser, sampler RNG, history) is saved to
    ``outdir/state.pt`` every ``resume_every`` steps; a rerun continues from it and gives the
    same weights as an uninterrupted run.
    """
    outdir = Path(outdir)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    start = 0
    state = checkpoint.load(outdir / "state.pt")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, start = state["history"], state["step"]
        if log:
            log.info("resuming training at step %d", start)
    snapshots = set(cfg.snapshot_steps)
    device = next(model.parameters()).device
    model.train()
    for step in progress(range(start, cfg.steps + 1), desc="train LM", total=cfg.steps + 1 - start):
        if step in snapshots and not snapshot_path(outdir / "checkpoints", step).exists():
            checkpoint.save(snapshot_path(outdir / "checkpoints", step), model.state_dict())
        if step > start and step % cfg.resume_every == 0:
            checkpoint.save(outdir / "state.pt", _state(model, opt, gen, history, step))
        if step == cfg.steps:
            break
        batch = random_windows(train_tokens, cfg.batch_size, cfg.context + 1, gen)
        if cfg.repeat_spans is not None:
            batch = cfg.repeat_spans.apply(batch, gen)
        batch = batch.to(device)
        loss = next_token_loss(model(batch[:, :-1]), batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.log_every == 0:
            history.append({"step": step, "loss": loss.item()})
    checkpoint.save(outdir / "state.pt", _state(model, opt, gen, history, cfg.steps))
    return pd.DataFrame(history)


def _state(model, opt, gen, history, step) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "history": list(history),
        "step": step,
    }
