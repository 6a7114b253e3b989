"""Furman & Lau (2024), "Estimating the Local Learning Coefficient at Scale", Sec. 4.

Method, one architecture at a time (one Snakemake job per architecture index):

1. Draw a deep linear network from its family: depth and widths uniform in the family's
   ranges; every layer starts from the standard init and, with probability 1/2, loses a
   uniform number of singular values. The truth is this network; r is the numerical rank
   of its product matrix.
2. Aoyagi's exact learning coefficient lambda and multiplicity m for (widths, r).
3. Data x ~ U[-10, 10]^{H_1}, noiseless targets y = W_L...W_1 x; loss = MSE averaged over
   batch and outputs; n*beta = n / log n.
4. lambda_hat at the true parameter with SGLD (gamma, batch, step size from the profile;
   the step size shrinks with model size, per family). lambda_hat uses the last
   ``draw_fraction`` of the steps as draws: nbeta * (mean batch loss - L_n(w*)).
5. A fresh network of the same architecture trained with SGD (momentum) on the same data;
   lambda_hat again at its endpoint.

``collect`` joins every architecture's JSON into a table and the paper's summary metrics.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from sltrepro import checkpoint
from sltrepro.health import health_metrics
from sltrepro.llc import (
    LLCDivergenceError,
    SamplerSettings,
    default_nbeta,
    estimate_llc,
    full_data_loss,
)
from sltrepro.models.dln import (
    DeepLinearNetwork,
    numerical_rank,
    random_low_rank_weights,
    sample_widths,
)
from sltrepro.progress import progress
from sltrepro.tasks.teacher import teacher_dataset
from sltrepro.theory import dln_learning_coefficient, rank_count_lambda

INPUT_RANGE = 10.0  # x ~ U[-10, 10]^{H_1}, as in the paper
PAPER_BAND = (-0.1, 0.5)  # where the paper's relative errors (lambda - hat)/lambda mostly lie


@dataclass
class Architecture:
    """One sampled DLN: widths input-first, the true weights and Aoyagi's lambda at rank r."""

    index: int
    family: str
    seed: int
    widths: list[int]
    weights: list[torch.Tensor]
    layer_ranks: list[int]
    rank: int
    lam: float
    multiplicity: int

    @property
    def num_params(self) -> int:
        return sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:], strict=True))

    def describe(self) -> dict:
        return {
            "index": self.index,
            "family": self.family,
            "seed": self.seed,
            "widths": self.widths,
            "depth": len(self.widths) - 1,
            "layer_ranks": self.layer_ranks,
            "num_params": self.num_params,
            "rank": self.rank,
            "lambda": self.lam,
            "multiplicity": self.multiplicity,
        }


def family_of(config: dict, index: int) -> dict:
    """The family holding architecture ``index`` (families fill indices in config order)."""
    if index < 0:
        raise ValueError(f"architecture index must be >= 0, got {index}")
    for family in config["families"]:
        if index < family["count"]:
            return family
        index -= family["count"]
    total = sum(f["count"] for f in config["families"])
    raise ValueError(f"architecture index out of range: the profile has {total} architectures")


def sample_architecture(config: dict, index: int) -> Architecture:
    """Architecture ``index`` of the profile, reproducible from (config seed, index)."""
    family = family_of(config, index)
    seed = config["seed"] * 1_000_003 + index
    gen = torch.Generator().manual_seed(seed)
    widths = sample_widths(
        gen,
        min_width=family["min_width"],
        max_width=family["max_width"],
        min_depth=family["min_depth"],
        max_depth=family["max_depth"],
    )
    weights, layer_ranks = random_low_rank_weights(widths, gen, cut_prob=config["rank_cut_prob"])
    rank = numerical_rank(DeepLinearNetwork.from_weights(weights).product().detach())
    lam, mult = dln_learning_coefficient(widths, rank)
    return Architecture(
        index, family["name"], seed, widths, weights, layer_ranks, rank, float(lam), mult
    )


def make_data(arch: Architecture, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): x (n, H_1) ~ U[-10, 10], y (n, H_{L+1}) = product @ x, noiseless."""
    teacher = DeepLinearNetwork.from_weights(arch.weights).product().detach()
    return teacher_dataset(teacher, n, low=-INPUT_RANGE, high=INPUT_RANGE, seed=arch.seed)


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over batch and outputs (the paper's loss)."""
    return F.mse_loss(pred, y)


def estimate_at(model, data, config: dict, family: dict, seed: int, device, log) -> dict:
    """lambda_hat at the model's current weights; diverged runs are recorded, not raised.

    Returns the estimator's summary plus timings: ``seconds_per_1k_steps`` (all chains
    advance together) and ``seconds_per_1k_chain_steps``.
    """
    llc = config["llc"]
    steps = family["num_steps"]
    draws = max(1, round(llc["draw_fraction"] * steps))
    settings = SamplerSettings(
        num_chains=family["num_chains"],
        num_draws=draws,
        num_burnin=steps - draws,
        step_size=family["step_size"],
        nbeta=default_nbeta(data[0].shape[0]),
        localization=llc["localization"],
        batch_size=llc["batch_size"],
        mala_every=llc["mala_every"],
    )
    try:
        result = estimate_llc(model, mse, data, settings, seed=seed, device=device, verbose=False)
    except LLCDivergenceError as err:
        log.warning("all chains diverged: %s", err)
        result = err.result
    out = result.summary()
    # a run whose chains all diverged stops early: its time is not a rate
    rate = math.nan if result.diverged.all() else 1000 * result.seconds / steps
    out["seconds_per_1k_steps"] = rate
    out["seconds_per_1k_chain_steps"] = out["seconds_per_1k_steps"] / family["num_chains"]
    for note in result.warnings:
        log.warning(note)
    return out


def train_sgd(arch: Architecture, data, sgd: dict, steps: int, ckpt_path: Path, device, log):
    """A fresh standard-init network of ``arch``'s widths trained with SGD + momentum.

    ``steps`` minibatches of ``sgd['batch_size']`` drawn with replacement; checkpoints every
    ``sgd['checkpoint_every']`` steps into ``ckpt_path`` and resumes from it. Returns the
    model (on ``device``) and its full-data loss.
    """
    torch.manual_seed(arch.seed + 1)  # the fresh init: nn.Linear's default, its own seed
    model = DeepLinearNetwork(arch.widths).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=sgd["lr"], momentum=sgd["momentum"])
    gen = torch.Generator(device=device).manual_seed(arch.seed + 2)
    start_step = 0
    state = checkpoint.load(ckpt_path)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        start_step = state["step"]
        log.info("resuming SGD from step %d", start_step)
    x, y = (t.to(device) for t in data)
    for step in progress(range(start_step, steps), desc="SGD", total=steps - start_step):
        idx = torch.randint(x.shape[0], (sgd["batch_size"],), generator=gen, device=device)
        loss = mse(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % sgd["checkpoint_every"] == 0 or step + 1 == steps:
            if not torch.isfinite(loss):
                raise FloatingPointError(f"SGD diverged at step {step} (loss {loss.item()})")
            state = {"model": model.state_dict(), "opt": opt.state_dict()}
            checkpoint.save(ckpt_path, {**state, "gen": gen.get_state(), "step": step + 1})
    return model, float(full_data_loss(model, mse, (x, y), device=device))


def estimate_architecture(config: dict, index: int, ckpt_path, device, log) -> dict:
    """Architecture ``index``: lambda and lambda_hat at w* and at the SGD endpoint (SGD
    resumes from ``ckpt_path``), as the record ``result_table`` reads."""
    start = time.perf_counter()
    arch = sample_architecture(config, index)
    family = family_of(config, index)
    log.info(
        "architecture %d: widths %s, r=%d, lambda=%.4g", index, arch.widths, arch.rank, arch.lam
    )
    data = make_data(arch, family["num_samples"])
    truth = DeepLinearNetwork.from_weights(arch.weights)
    at_truth = estimate_at(truth, data, config, family, arch.seed, device, log)
    model, loss = train_sgd(arch, data, config["sgd"], family["sgd_steps"], ckpt_path, device, log)
    at_sgd = estimate_at(model.cpu(), data, config, family, arch.seed + 3, device, log)
    record = {**arch.describe(), "true": at_truth, "sgd": {**at_sgd, "train_loss": loss}}
    record["wall_seconds"] = time.perf_counter() - start
    return record


def relative_error(lam, lam_hat):
    """(lambda - lambda_hat) / lambda, the paper's sign: positive means an underestimate."""
    return (lam - lam_hat) / lam


def result_table(paths) -> pd.DataFrame:
    """One row per architecture from the per-architecture result.json files."""
    rows = []
    for path in paths:
        rec = json.loads(Path(path).read_text())
        row = {k: rec[k] for k in ("index", "family", "num_params", "depth", "rank", "lambda")}
        row["multiplicity"] = rec["multiplicity"]
        row["lambda_rank_count"] = float(rank_count_lambda(rec["widths"], rec["rank"]))
        row["widths"] = "-".join(map(str, rec["widths"]))
        row["wall_seconds"] = rec["wall_seconds"]
        for where in ("true", "sgd"):
            est = rec[where]
            row[f"lambda_hat_{where}"] = est["llc_mean"]
            row[f"std_{where}"] = est["llc_std"]
            row[f"acceptance_{where}"] = est["mala_acceptance"]
            row[f"diverged_chains_{where}"] = est["diverged_chains"]
            row[f"healthy_{where}"] = est["healthy"]
            row[f"chains_{where}"] = est["num_chains"]
            row[f"seconds_{where}"] = est["seconds"]
            row[f"seconds_per_1k_steps_{where}"] = est["seconds_per_1k_steps"]
            for k in ("rhat", "ess_bulk", "ess_tail", "llc_mcse", "loss_budget", "mala_exact"):
                row[f"{k}_{where}"] = est[k]
            row[f"health_reasons_{where}"] = est["health_reasons"]
        row["sgd_train_loss"] = rec["sgd"]["train_loss"]
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("index").reset_index(drop=True)
    table["rel_error_true"] = relative_error(table["lambda"], table["lambda_hat_true"])
    table["rel_error_sgd"] = relative_error(table["lambda"], table["lambda_hat_sgd"])
    table["ratio_sgd_true"] = table["lambda_hat_sgd"] / table["lambda_hat_true"]
    table["rel_error_rank_count"] = relative_error(table["lambda"], table["lambda_rank_count"])
    return table


def summary_metrics(table: pd.DataFrame) -> dict:
    """The numbers the claims check (NaN estimates = diverged runs, excluded and counted)."""
    ok = table.dropna(subset=["lambda_hat_true"])
    rel = ok["rel_error_true"]
    lo, hi = PAPER_BAND
    chains = table["chains_true"].sum()
    diverged = table["diverged_chains_true"].sum()
    metrics = {
        "num_architectures": len(table),
        "min_params": int(table["num_params"].min()),
        "max_params": int(table["num_params"].max()),
        "spearman_true": float(spearmanr(ok["lambda"], ok["lambda_hat_true"]).statistic)
        if len(ok) > 2
        else None,
        "median_abs_rel_error_true": float(rel.abs().median()),
        "max_abs_rel_error_true": float(rel.abs().max()),
        "median_rel_error_true": float(rel.median()),
        "frac_rel_error_in_paper_band": float(((rel >= lo) & (rel <= hi)).mean()),
        "diverged_chain_fraction_true": float(diverged / chains),
        "median_acceptance_true": float(table["acceptance_true"].median()),
        # the health verdict of each estimate (sltrepro.llc_diagnostics)
        "llc_healthy_true": bool(table["healthy_true"].astype(bool).all()),
        "llc_healthy_fraction_true": float(table["healthy_true"].astype(bool).mean()),
    }
    # The null every claim must beat: the rank-count predictor r(H_1 + H_{L+1} - r)/2, which
    # knows nothing of SLT, scored on the same (non-diverged) nets.
    null_rel = ok["rel_error_rank_count"]
    metrics["spearman_rank_count"] = (
        float(spearmanr(ok["lambda"], ok["lambda_rank_count"]).statistic) if len(ok) > 2 else None
    )
    metrics["median_abs_rel_error_rank_count"] = float(null_rel.abs().median())
    metrics["max_abs_rel_error_rank_count"] = float(null_rel.abs().max())
    metrics["frac_rel_error_in_paper_band_rank_count"] = float(
        ((null_rel >= lo) & (null_rel <= hi)).mean()
    )
    metrics["spearman_true_minus_rank_count"] = (
        metrics["spearman_true"] - metrics["spearman_rank_count"]
        if metrics["spearman_true"] is not None and metrics["spearman_rank_count"] is not None
        else None
    )
    metrics["median_abs_rel_error_true_over_rank_count"] = (
        metrics["median_abs_rel_error_true"] / metrics["median_abs_rel_error_rank_count"]
        if metrics["median_abs_rel_error_rank_count"] > 0
        else None
    )
    both = table.dropna(subset=["lambda_hat_true", "lambda_hat_sgd"])
    metrics["median_ratio_sgd_true"] = float(both["ratio_sgd_true"].median())
    metrics["median_abs_rel_error_sgd"] = float(both["rel_error_sgd"].abs().median())
    metrics["llc_healthy_sgd"] = bool(table["healthy_sgd"].astype(bool).all())
    metrics["llc_healthy_fraction_sgd"] = float(table["healthy_sgd"].astype(bool).mean())
    for where in ("true", "sgd"):
        own = table.filter(regex=f"_{where}$")
        own.columns = [c.removesuffix(f"_{where}") for c in own.columns]
        own = own.rename(columns={"lambda_hat": "llc_mean", "acceptance": "mala_acceptance"})
        metrics |= health_metrics(own, f"{where}_", labels=table.get("widths"))
    metrics["diverged_chain_fraction_sgd"] = float(
        table["diverged_chains_sgd"].sum() / table["chains_sgd"].sum()
    )
    return {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()
    }
