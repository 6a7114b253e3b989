"""Train the in-context regression transformer: Adam, one-cycle triangle LR, fresh batches.

Hoogland et al. 2024 train with Adam (0.9, 0.999) at batch 256 for 500k steps, the learning
rate rising linearly from 0 to 3e-3 at the halfway step and back to 0, and keep checkpoints
at the union of log-spaced and linearly spaced steps. Every step draws a new batch from the
task distribution, so there is no fixed training set.

:func:`train` resumes from ``<outdir>/resume.pt`` (model, optimiser, random stream, the
checkpoints so far), written atomically every ``save_every`` steps.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sltrepro import checkpoint
from sltrepro.models.icl_transformer import ICLTransformer, encode
from sltrepro.progress import progress
from sltrepro.tasks.regression import sample_batch, task_pool


@dataclass(frozen=True)
class TrainSpec:
    """Training settings; the defaults are the paper's."""

    steps: int = 500_000
    batch_size: int = 256
    peak_lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.999)
    num_log_checkpoints: int = 100
    num_linear_checkpoints: int = 100
    dim: int = 4
    num_examples: int = 8
    noise_var: float = 0.125
    num_tasks: int | None = None
    """Size M of a finite task pool; None for a fresh task per sequence."""
    log_every: int = 100
    save_every: int = 1000
    peak_fraction: float = 0.5
    """Where the one-cycle schedule peaks, as a fraction of ``steps`` (the paper: half-way;
    the learning-rate control moves it)."""


def triangle_lr(step: int, total: int, peak: float, peak_fraction: float = 0.5) -> float:
    """One-cycle triangle: 0 at step 0, ``peak`` at ``peak_fraction * total``, 0 at ``total``."""
    top = peak_fraction * total
    return peak * (step / top if step <= top else max(total - step, 0) / (total - top))


def checkpoint_steps(total: int, num_log: int, num_linear: int) -> list[int]:
    """Sorted union of ``num_log`` log-spaced steps in [1, total] and ``num_linear`` linearly
    spaced steps in [0, total] (integers, duplicates merged; the paper's 100 + 100 give 190
    for 500k steps)."""
    log = np.round(np.logspace(0, np.log10(total), num_log)) if num_log else []
    linear = np.round(np.linspace(0, total, num_linear)) if num_linear else []
    return sorted({int(s) for s in np.concatenate([log, linear, [0, total]])})


def mse_by_position(preds: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean squared error at each context position: (B, K), (B, K) -> (K,)."""
    return (preds - ys).pow(2).mean(0)


def train(
    model: ICLTransformer, spec: TrainSpec, outdir: Path, *, seed: int, log=None, device="cpu"
) -> dict:
    """Train ``model`` in place on ``device``; returns {"checkpoints": {step: state_dict},
    "history": rows}, the checkpoints' tensors on the CPU.

    history rows: (step, lr, training loss of that step's batch). Batches are drawn on the
    CPU from the seed's generator whatever the device, so every device trains on the same
    data.
    """
    resume_path = Path(outdir) / "resume.pt"
    model.to(device)
    gen = torch.Generator().manual_seed(seed)
    pool = task_pool(spec.num_tasks, spec.dim, generator=gen) if spec.num_tasks else None
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=spec.betas)
    wanted = set(
        checkpoint_steps(spec.steps, spec.num_log_checkpoints, spec.num_linear_checkpoints)
    )
    state = checkpoint.load(resume_path)
    if state is None:
        start, saved, history = 0, {}, []
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start, saved, history = state["step"], state["checkpoints"], state["history"]
        if log:
            log.info("resuming from step %d (%d checkpoints kept)", start, len(saved))

    def keep(step):
        saved[step] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    if start == 0 and 0 in wanted:
        keep(0)
    for step in progress(range(start, spec.steps), desc="train", total=spec.steps, initial=start):
        lr = triangle_lr(step, spec.steps, spec.peak_lr, spec.peak_fraction)
        for group in opt.param_groups:
            group["lr"] = lr
        xs, ys, _ = sample_batch(
            spec.batch_size,
            dim=spec.dim,
            num_examples=spec.num_examples,
            noise_var=spec.noise_var,
            generator=gen,
            pool=pool,
        )
        tokens, ys = encode(xs, ys).to(device), ys.to(device)
        loss = mse_by_position(model(tokens), ys).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % spec.log_every == 0 or done == spec.steps:
            history.append((done, lr, loss.item()))
        if done in wanted:
            keep(done)
        if done % spec.save_every == 0 and done < spec.steps:
            checkpoint.save(
                resume_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "step": done,
                    "checkpoints": saved,
                    "history": history,
                },
            )
    return {"checkpoints": saved, "history": history}
