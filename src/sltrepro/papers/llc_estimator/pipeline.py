"""Lau et al. 2023: the LLC estimator against known learning coefficients.

Steps (each writes into its own folder):

- ``normal_crossing --opt model=NAME``: Table 1, one model y = p(w) x + N(0, s^2) at w* = 0,
  one dataset and one multi-chain estimate per seed -> ``estimates.json``.
- ``dln --opt case=NAME``: a reduced-rank-regression / deep-linear-network case at a random
  true parameter of the given rank, one estimate per seed -> ``estimates.json``.
- ``calibrate``: step size x nbeta sweep on one DLN case -> ``calibration.csv``, ``.json``.
- ``collect``: joins the above into ``table.csv`` and ``metrics.json``.
- ``figures``: the estimates and calibration figures from those tables.
"""

import json
import math

import numpy as np
import pandas as pd
import torch

from sltrepro.llc import SamplerSettings, default_nbeta, estimate_llc
from sltrepro.llc_calibration import calibrate as calibrate_sweep
from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.models.normal_crossing import MonomialRegression, gaussian_nll, monomial_data
from sltrepro.papers.llc_estimator import figures as figs
from sltrepro.theory import dln_learning_coefficient, normal_crossing_lambda

# Table 1 of Lau et al. 2023 (SGLD column, eps = 5e-4, 10 seeds): mean, std.
PAPER_SGLD = {
    "w1w2_3": (0.11, 0.07),
    "w1w2_2": (0.14, 0.12),
    "w2": (0.45, 0.11),
    "w1": (0.47, 0.13),
}


def _seed(config: dict, index: int) -> int:
    return int(config["seed"]) * 1000 + index


def _by_name(items: list[dict], name: str, what: str) -> dict:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"no {what} named {name!r}; have {[i['name'] for i in items]}")


def true_dln(widths, rank: int, seed: int) -> DeepLinearNetwork:
    """A DLN with N(0, 1/fan_in) layers whose first layer is cut to rank ``rank`` (so the
    product has rank ``rank`` almost surely when no later layer is narrower)."""
    gen = torch.Generator().manual_seed(seed)
    net = DeepLinearNetwork(widths)
    with torch.no_grad():
        for layer in net.layers:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) / math.sqrt(fan_in))
        u, s, vh = torch.linalg.svd(net.layers[0].weight, full_matrices=False)
        s[rank:] = 0.0
        net.layers[0].weight.copy_(u @ torch.diag(s) @ vh)
    product_rank = int(torch.linalg.matrix_rank(net.product().detach()))
    if product_rank != rank:
        raise ValueError(f"DLN {widths}: product rank {product_rank}, wanted {rank}")
    return net


def dln_data(net: DeepLinearNetwork, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I), y = net(x) + N(0, I): unit-variance Gaussian regression."""
    gen = torch.Generator().manual_seed(seed + 7919)
    x = torch.randn(n, net.widths[0], generator=gen)
    with torch.no_grad():
        y = net(x) + torch.randn(n, net.widths[-1], generator=gen)
    return x, y


def _estimate(ctx, model, loss_fn, data, seed, step_size=None) -> dict:
    settings = SamplerSettings.from_config(ctx.config["sampler"])
    if step_size:
        settings = settings.replace(step_size=step_size)
    res = estimate_llc(model, loss_fn, data, settings, seed=seed, device=ctx.device, verbose=False)
    ctx.log.info(
        "seed %d: llc %.4f (chain std %.4f), MALA %.3f, %d diverged, %.1f s",
        seed,
        res.llc_mean,
        res.llc_std,
        float(np.nanmean(res.mala_acceptance)),
        int(res.diverged.sum()),
        res.seconds,
    )
    return res.summary()


def normal_crossing(ctx) -> None:
    cfg = ctx.config
    spec = _by_name(cfg["models"], ctx.opt("model"), "model")
    truth = normal_crossing_lambda(spec["powers"])[0]
    loss_fn = gaussian_nll(cfg["noise_std"])
    runs = []
    for i in range(cfg["seeds"]):
        seed = _seed(cfg, i)
        data = monomial_data(cfg["num_samples"], noise_std=cfg["noise_std"], seed=seed)
        runs.append(_estimate(ctx, MonomialRegression(spec["powers"]), loss_fn, data, seed))
    out = {"kind": "normal_crossing", "name": spec["name"], "powers": spec["powers"]}
    out.update(truth=float(truth), truth_str=str(truth), runs=runs)
    (ctx.outdir / "estimates.json").write_text(json.dumps(out, indent=1))


def dln(ctx) -> None:
    cfg = ctx.config
    case = _by_name(cfg["dln_cases"], ctx.opt("case"), "dln case")
    truth = dln_learning_coefficient(case["widths"], case["rank"])[0]
    runs = []
    for i in range(cfg["seeds"]):
        seed = _seed(cfg, i)
        net = true_dln(case["widths"], case["rank"], seed)
        data = dln_data(net, cfg["num_samples"], seed)
        runs.append(_estimate(ctx, net, gaussian_nll(1.0), data, seed, case["step_size"]))
    out = {"kind": "dln", "name": case["name"], "widths": case["widths"], "rank": case["rank"]}
    out.update(truth=float(truth), truth_str=str(truth), runs=runs)
    (ctx.outdir / "estimates.json").write_text(json.dumps(out, indent=1))


def calibrate(ctx) -> None:
    cfg, cal = ctx.config, ctx.config["calibration"]
    case = _by_name(cfg["dln_cases"], cal["case"], "dln case")
    net = true_dln(case["widths"], case["rank"], _seed(cfg, 0))
    data = dln_data(net, cfg["num_samples"], _seed(cfg, 0))
    base = default_nbeta(cfg["num_samples"])
    result = calibrate_sweep(
        net,
        gaussian_nll(1.0),
        data,
        step_sizes=cal["step_sizes"],
        nbetas=[f * base for f in cal["nbeta_factors"]],
        num_chains=cal["num_chains"],
        num_draws=cal["num_draws"],
        num_burnin=cal["num_burnin"],
        localization=cfg["sampler"]["localization"],
        batch_size=cfg["sampler"]["batch_size"],
        seed=_seed(cfg, 0),
        device=ctx.device,
        mala_every=1,
    )
    table = result.table.assign(nbeta_factor=lambda t: t["nbeta"] / base)
    table.to_csv(ctx.outdir / "calibration.csv", index=False)
    truth = float(dln_learning_coefficient(case["widths"], case["rank"])[0])
    summary = {"case": case["name"], "truth": truth, "best_step_size": result.best_step_size}
    summary["best_nbeta"] = result.best_nbeta
    (ctx.outdir / "calibration.json").write_text(json.dumps(summary, indent=1))
    ctx.log.info("calibration:\n%s", table.to_string())


def _row(est: dict) -> dict:
    llc = np.array([r["llc_mean"] for r in est["runs"]], dtype=float)
    acc = np.array([r["mala_acceptance"] for r in est["runs"]], dtype=float)
    row = {"kind": est["kind"], "name": est["name"], "truth": est["truth"]}
    row.update(truth_str=est["truth_str"], seeds=len(llc), mean=float(llc.mean()))
    row.update(std=float(llc.std(ddof=1)), mala=float(acc.mean()))
    row["diverged_chains"] = int(sum(r["diverged_chains"] for r in est["runs"]))
    row["healthy_seeds"] = int(sum(r["healthy"] for r in est["runs"]))
    row["max_rhat"] = max(r["rhat"] for r in est["runs"])
    row["min_ess_bulk"] = min(r["ess_bulk"] for r in est["runs"])
    paper = PAPER_SGLD.get(est["name"]) if est["kind"] == "normal_crossing" else None
    row["paper_mean"], row["paper_std"] = paper if paper else (math.nan, math.nan)
    return row


def collect(ctx) -> None:
    """Table 1 (+ DLN rows) and the flat metrics the claims read."""
    ests = [json.loads(p.read_text()) for p in ctx.inputs if p.name == "estimates.json"]
    cal = [json.loads(p.read_text()) for p in ctx.inputs if p.name == "calibration.json"]
    table = pd.DataFrame([_row(e) for e in ests])
    table.to_csv(ctx.outdir / "table.csv", index=False)
    metrics = {}
    for row in table.itertuples():
        err = abs(row.mean - row.truth)
        key = row.name
        metrics[f"{key}_mean"] = row.mean
        metrics[f"{key}_std"] = row.std
        if row.kind == "normal_crossing":
            metrics[f"{key}_abs_error"] = err
            metrics[f"{key}_truth_within_2std"] = bool(err <= 2 * row.std)
        else:
            metrics[f"{key}_rel_error"] = err / row.truth
        metrics[f"{key}_diverged_chains"] = row.diverged_chains
        # every seed's estimate passed the health verdict (sltrepro.llc_diagnostics)
        metrics[f"{key}_llc_healthy"] = bool(row.healthy_seeds == row.seeds)
    if cal:
        metrics["calibration_best_step_size"] = cal[0]["best_step_size"]
        metrics["calibration_found_stable"] = cal[0]["best_step_size"] is not None
    (ctx.outdir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    ctx.log.info("table:\n%s", table.to_string())


def make_figures(ctx) -> None:
    by_name = {p.name: p for p in ctx.inputs}
    figs.estimates_figure(pd.read_csv(by_name["table.csv"]), ctx.outdir / "estimates.png")
    figs.calibration_figure(
        pd.read_csv(by_name["calibration.csv"]),
        json.loads(by_name["calibration.json"].read_text()),
        ctx.outdir / "calibration.png",
    )
