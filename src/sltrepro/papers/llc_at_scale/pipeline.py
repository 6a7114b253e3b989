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
   The same chains are run once more on the exact full-data loss (``exact_data``: the
   Gram form of the noiseless MSE, H_1 rows): their MALA acceptance is exact, where the
   minibatch one is a proxy read on potentials of different batches.
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
# The estimates per net: SGLD at w* (the paper's), the same on the exact loss, at the SGD end.
ESTIMATES = ("true", "exact", "sgd")


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


def _draw_widths(config: dict, index: int) -> tuple[dict, int, torch.Generator, list[int]]:
    """Architecture ``index``'s family, seed, generator and widths (drawn first from it)."""
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
    return family, seed, gen, widths


def architecture_widths(config: dict, index: int) -> list[int]:
    """The widths of architecture ``index``, as :func:`sample_architecture` draws them,
    without its weights (cheap at any size)."""
    return _draw_widths(config, index)[3]


def sample_architecture(config: dict, index: int) -> Architecture:
    """Architecture ``index`` of the profile, reproducible from (config seed, index)."""
    family, seed, gen, widths = _draw_widths(config, index)
    # a family may cut every layer (rank_cut_prob 1): rank bottlenecks, where Aoyagi's
    # lambda and the rank count differ most
    cut_prob = family.get("rank_cut_prob", config["rank_cut_prob"])
    weights, layer_ranks = random_low_rank_weights(widths, gen, cut_prob=cut_prob)
    rank = numerical_rank(DeepLinearNetwork.from_weights(weights).product().detach())
    lam, mult = dln_learning_coefficient(widths, rank)
    return Architecture(
        index, family["name"], seed, widths, weights, layer_ranks, rank, float(lam), mult
    )


def make_data(arch: Architecture, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): x (n, H_1) ~ U[-10, 10], y (n, H_{L+1}) = product @ x, noiseless."""
    teacher = DeepLinearNetwork.from_weights(arch.weights).product().detach()
    return teacher_dataset(teacher, n, low=-INPUT_RANGE, high=INPUT_RANGE, seed=arch.seed)


def exact_data(arch: Architecture, data) -> tuple[torch.Tensor, torch.Tensor]:
    """(x', y'), H_1 rows whose MSE equals the full-data MSE of ``data`` at every w.

    For the noiseless teacher, L_n(w) = tr((P(w) - P*) S (P(w) - P*)^T) / H_{L+1} with
    S = X^T X / n; with S = R^T R, the rows of x' = sqrt(H_1) R give the same mean, so a
    "full batch" of H_1 rows reads the exact L_n and its gradient (costing less than one
    minibatch of 500).
    """
    x = data[0].double()
    root = torch.linalg.cholesky(x.T @ x / x.shape[0]).T
    rows = (root * math.sqrt(x.shape[1])).float()
    teacher = DeepLinearNetwork.from_weights(arch.weights).product().detach()
    return rows, rows @ teacher.T


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over batch and outputs (the paper's loss)."""
    return F.mse_loss(pred, y)


def sampler_settings(llc: dict, block: dict, nbeta: float, batch_size=None) -> SamplerSettings:
    """SGLD settings from the profile's ``llc`` block and ``block``'s (a family's or the
    rescaling experiment's) ``num_steps``, ``num_chains`` and ``step_size``: the last
    ``draw_fraction`` of the steps are the draws; ``batch_size`` defaults to the profile's."""
    steps = block["num_steps"]
    draws = max(1, round(llc["draw_fraction"] * steps))
    return SamplerSettings(
        num_chains=block["num_chains"],
        num_draws=draws,
        num_burnin=steps - draws,
        step_size=block["step_size"],
        nbeta=nbeta,
        localization=llc["localization"],
        batch_size=batch_size or llc["batch_size"],
        mala_every=llc["mala_every"],
    )


def estimate_at(
    model, data, config: dict, family: dict, seed: int, device, log, nbeta=None, batch_size=None
) -> tuple[dict, np.ndarray]:
    """lambda_hat at the model's current weights; diverged runs are recorded, not raised.

    ``nbeta`` defaults to n / log n of ``data``, ``batch_size`` to the profile's. Returns the
    estimator's summary plus timings: ``seconds_per_1k_steps`` (all chains advance together)
    and ``seconds_per_1k_chain_steps``; and the (C, D) LLC trace of the chains.
    """
    steps = family["num_steps"]
    nbeta = nbeta or default_nbeta(data[0].shape[0])
    settings = sampler_settings(config["llc"], family, nbeta, batch_size)
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
    return out, result.llc_trace.astype(np.float32)


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


def estimate_architecture(
    config: dict, index: int, ckpt_path, device, log
) -> tuple[dict, dict[str, np.ndarray]]:
    """Architecture ``index``: lambda and lambda_hat at w* and at the SGD endpoint (SGD
    resumes from ``ckpt_path``), as the record ``result_table`` reads, and the (C, D) LLC
    traces of its estimates, keyed as :data:`ESTIMATES`."""
    start = time.perf_counter()
    arch = sample_architecture(config, index)
    family = family_of(config, index)
    log.info(
        "architecture %d: widths %s, r=%d, lambda=%.4g", index, arch.widths, arch.rank, arch.lam
    )
    data = make_data(arch, family["num_samples"])
    truth = DeepLinearNetwork.from_weights(arch.weights)
    at_truth, truth_trace = estimate_at(truth, data, config, family, arch.seed, device, log)
    exact = exact_data(arch, data)
    nbeta = default_nbeta(family["num_samples"])
    rows = exact[0].shape[0]
    at_exact, exact_trace = estimate_at(
        truth, exact, config, family, arch.seed, device, log, nbeta, rows
    )
    model, loss = train_sgd(arch, data, config["sgd"], family["sgd_steps"], ckpt_path, device, log)
    at_sgd, sgd_trace = estimate_at(model.cpu(), data, config, family, arch.seed + 3, device, log)
    record = {**arch.describe(), "true": at_truth, "exact": at_exact}
    record["sgd"] = {**at_sgd, "train_loss": loss}
    record["wall_seconds"] = time.perf_counter() - start
    return record, dict(zip(ESTIMATES, (truth_trace, exact_trace, sgd_trace), strict=True))


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
        for where in ESTIMATES:
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
    table["rel_error_exact"] = relative_error(table["lambda"], table["lambda_hat_exact"])
    table["ratio_sgd_true"] = table["lambda_hat_sgd"] / table["lambda_hat_true"]
    table["rel_error_rank_count"] = relative_error(table["lambda"], table["lambda_rank_count"])
    return table


def _null_comparison(ok: pd.DataFrame, suffix: str = "") -> dict:
    """lambda_hat at w* against the rank-count null on the same (non-diverged) nets ``ok``:
    Spearman and median |relative error| of each, their difference and ratio."""

    def spearman(column):
        return float(spearmanr(ok["lambda"], ok[column]).statistic) if len(ok) > 2 else None

    ours, null = spearman("lambda_hat_true"), spearman("lambda_rank_count")
    ours_err = float(ok["rel_error_true"].abs().median())
    null_err = float(ok["rel_error_rank_count"].abs().median())
    return {
        f"spearman_true{suffix}": ours,
        f"spearman_rank_count{suffix}": null,
        f"spearman_true_minus_rank_count{suffix}": (
            ours - null if ours is not None and null is not None else None
        ),
        f"median_abs_rel_error_true{suffix}": ours_err,
        f"median_abs_rel_error_rank_count{suffix}": null_err,
        f"median_abs_rel_error_true_over_rank_count{suffix}": (
            ours_err / null_err if null_err > 0 else None
        ),
    }


def summary_metrics(table: pd.DataFrame) -> dict:
    """The numbers the claims check (NaN estimates = diverged runs, excluded and counted).

    The null every claim must beat is the rank-count predictor r(H_1 + H_{L+1} - r)/2,
    which knows nothing of SLT, scored on the same nets (``*_rank_count``); each family
    gets the comparison too (suffix ``_<family>``). ``median_acceptance_true`` is the
    minibatch MALA proxy of the paper's chains, ``median_acceptance_exact`` the exact one.
    """
    ok = table.dropna(subset=["lambda_hat_true"])
    rel = ok["rel_error_true"]
    null_rel = ok["rel_error_rank_count"]
    lo, hi = PAPER_BAND
    chains = table["chains_true"].sum()
    diverged = table["diverged_chains_true"].sum()
    metrics = {
        "num_architectures": len(table),
        "min_params": int(table["num_params"].min()),
        "max_params": int(table["num_params"].max()),
        **_null_comparison(ok),
        "max_abs_rel_error_true": float(rel.abs().max()),
        "median_rel_error_true": float(rel.median()),
        "frac_rel_error_in_paper_band": float(((rel >= lo) & (rel <= hi)).mean()),
        "max_abs_rel_error_rank_count": float(null_rel.abs().max()),
        "frac_rel_error_in_paper_band_rank_count": float(
            ((null_rel >= lo) & (null_rel <= hi)).mean()
        ),
        "diverged_chain_fraction_true": float(diverged / chains),
        "median_acceptance_true": float(table["acceptance_true"].median()),
        "median_acceptance_exact": float(table["acceptance_exact"].median()),
        "min_acceptance_exact": float(table["acceptance_exact"].min()),
        "median_abs_rel_error_exact": float(ok["rel_error_exact"].abs().median()),
    }
    for family, rows in ok.groupby("family", sort=False):
        metrics |= _null_comparison(rows, f"_{family}")
    both = table.dropna(subset=["lambda_hat_true", "lambda_hat_sgd"])
    metrics["median_ratio_sgd_true"] = float(both["ratio_sgd_true"].median())
    metrics["median_abs_rel_error_sgd"] = float(both["rel_error_sgd"].abs().median())
    for where in ESTIMATES:
        healthy = table[f"healthy_{where}"].astype(bool)
        metrics[f"llc_healthy_{where}"] = bool(healthy.all())
        metrics[f"llc_healthy_fraction_{where}"] = float(healthy.mean())
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
