"""Lau et al. 2023: the LLC estimator against known learning coefficients.

Steps (the adapters in ``__init__.py`` write what these return into the rule's outputs):

- ``normal_crossing --opt model=NAME``: Table 1, one model y = p(w) x + N(0, s^2) at w* = 0
  (or the two-minimum potential at one of its minima: the locality demonstration), one
  dataset and one multi-chain estimate per seed, each next to the finite-nbeta reference
  computed by quadrature on the same data (``reference.py``) -> ``estimates.json``.
- ``dln --opt case=NAME``: a reduced-rank-regression / deep-linear-network case at a random
  true parameter of the given rank, one estimate per seed -> ``estimates.json``.
- ``mala_reference --opt case=NAME``: the same DLN case's finite-nbeta expectation by a long
  full-batch Metropolis-adjusted chain -> ``reference.json``.
- ``calibrate``: step size x nbeta sweep on one DLN case -> ``calibration.csv``, ``.json``.
- ``collect``: joins the above into ``table.csv``, ``diagnostics.csv`` (every estimate's
  R-hat, ESS, MCSE, budgets, MALA and health verdict) and ``metrics.json``.
- ``figures``: the estimates, calibration and LLC-trace figures from those files.
"""

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import torch

from sltrepro.health import health_metrics
from sltrepro.llc import ROW_FIELDS, SamplerSettings, default_nbeta, estimate_llc
from sltrepro.llc_calibration import calibrate as calibrate_sweep
from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.models.normal_crossing import (
    MonomialRegression,
    TwoMinimaRegression,
    gaussian_nll,
    monomial_data,
    two_minima,
)
from sltrepro.papers.llc_estimator import reference
from sltrepro.theory import (
    dln_learning_coefficient,
    isotropic_lambda,
    normal_crossing_lambda,
    rank_count_lambda,
)

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


def two_minima_lambda(w_star) -> Fraction:
    """The local learning coefficient of the two-minimum potential at a true parameter."""
    w1, w2 = (float(v) for v in w_star)
    if w1 == 0.0 and w2 == 0.0:
        return isotropic_lambda(2, 4)  # (w1^2 + w2^2)^4 near the origin
    if w1 == 1.0 and w2 != 0.0:
        return Fraction(1, 2)  # (w1 - 1)^2 times a positive factor: one regular direction
    raise ValueError(f"{list(w_star)} is not a minimum of (w1-1)^2 (w1^2+w2^2)^4 we know")


def _potential(spec: dict):
    """(model at w*, coefficient f(w1, w2) for the quadrature, w*, asymptotic lambda)."""
    if "powers" in spec:
        if len(spec["powers"]) != 2:
            raise ValueError(f"{spec['name']}: the quadrature reference needs two parameters")
        truth = normal_crossing_lambda(spec["powers"])[0]
        model = MonomialRegression(spec["powers"])
        return model, reference.monomial(spec["powers"]), (0.0, 0.0), truth
    w_star = tuple(float(v) for v in spec["w_star"])
    return TwoMinimaRegression(w_star), two_minima, w_star, two_minima_lambda(w_star)


def _estimate(
    cfg,
    device,
    log,
    model,
    loss_fn,
    data,
    seed,
    step_size=None,
    localization=None,
    keep_trace=False,
) -> dict:
    """One estimate's summary row (plus, with ``keep_trace``, its (C, D) LLC trace for the
    trace figure: kept for the first seed only, the traces of all seeds would be large)."""
    changes = {"step_size": step_size, "localization": localization}
    settings = SamplerSettings.from_config(cfg["sampler"]).replace(
        **{k: v for k, v in changes.items() if v is not None}
    )
    res = estimate_llc(model, loss_fn, data, settings, seed=seed, device=device, verbose=False)
    log.info(
        "seed %d: llc %.4f (chain std %.4f), MALA %.3f, %d diverged, %.1f s",
        seed,
        res.llc_mean,
        res.llc_std,
        float(np.nanmean(res.mala_acceptance)),
        int(res.diverged.sum()),
        res.seconds,
    )
    out = res.summary()
    if keep_trace:
        out["llc_trace"] = res.llc_trace.round(6).tolist()
    return out


def normal_crossing_run(
    cfg: dict, spec: dict, index: int, device, log, step_size=None, keep_trace=False
) -> dict:
    """Seed ``index`` of model ``spec``: its estimate and the quadrature reference of the
    tempered posterior it samples (``step_size`` overrides the model's own)."""
    model, coefficient, w_star, _ = _potential(spec)
    gamma = spec.get("localization", cfg["sampler"]["localization"])
    seed = _seed(cfg, index)
    data = monomial_data(cfg["num_samples"], noise_std=cfg["noise_std"], seed=seed)
    loss_fn = gaussian_nll(cfg["noise_std"])
    step_size = step_size or spec.get("step_size")
    run = _estimate(cfg, device, log, model, loss_fn, data, seed, step_size, gamma, keep_trace)
    run["reference"] = reference.tempered_llc(
        coefficient,
        reference.sufficient_stats(*data),
        noise_std=cfg["noise_std"],
        nbeta=run["nbeta"],
        localization=gamma,
        w_star=w_star,
    )
    log.info("seed %d: quadrature reference %.4f", seed, run["reference"])
    return run


def normal_crossing(cfg: dict, name: str, device, log) -> dict:
    """Model ``name`` of Table 1: one estimate and its quadrature reference per seed."""
    spec = _by_name(cfg["models"], name, "model")
    _, _, w_star, truth = _potential(spec)
    runs = [
        normal_crossing_run(cfg, spec, i, device, log, keep_trace=i == 0)
        for i in range(cfg["seeds"])
    ]
    out = {"kind": "normal_crossing", "name": spec["name"], "w_star": list(w_star)}
    out.update(powers=spec.get("powers"))
    out.update(localization=spec.get("localization", cfg["sampler"]["localization"]))
    out.update(truth=float(truth), truth_str=str(truth), runs=runs)
    return out


def dln_run(cfg: dict, case: dict, index: int, device, log, step_size=None, keep_trace=False):
    """Seed ``index`` of DLN case ``case``, at a random true parameter of its rank."""
    seed = _seed(cfg, index)
    net = true_dln(case["widths"], case["rank"], seed)
    data = dln_data(net, cfg["num_samples"], seed)
    step_size = step_size or case["step_size"]
    return _estimate(
        cfg, device, log, net, gaussian_nll(1.0), data, seed, step_size, None, keep_trace
    )


def dln(cfg: dict, name: str, device, log) -> dict:
    """DLN case ``name`` at a random true parameter of its rank: one estimate per seed."""
    case = _by_name(cfg["dln_cases"], name, "dln case")
    truth = dln_learning_coefficient(case["widths"], case["rank"])[0]
    runs = [dln_run(cfg, case, i, device, log, keep_trace=i == 0) for i in range(cfg["seeds"])]
    out = {"kind": "dln", "name": case["name"], "widths": case["widths"], "rank": case["rank"]}
    out.update(truth=float(truth), truth_str=str(truth), runs=runs)
    return out


def mala_reference(cfg: dict, name: str) -> dict:
    """The finite-nbeta expectation for a DLN case by a long full-batch MALA chain on the
    same posterior, datasets and true parameters as the ``dln`` step (no discretisation
    bias, unlike SGLD): settles whether a gap to Aoyagi's lambda is the sampler's or n's."""
    mr = cfg["mala_reference"]
    case = _by_name(cfg["dln_cases"], name, "dln case")
    weights, stats = [], []
    for i in range(cfg["seeds"]):
        net = true_dln(case["widths"], case["rank"], _seed(cfg, i))
        x, y = dln_data(net, cfg["num_samples"], _seed(cfg, i))
        weights.append([layer.weight.detach().numpy() for layer in net.layers])
        stats.append(reference.linear_stats(x.numpy(), y.numpy()))
    out = reference.mala_dln_reference(
        weights,
        stats,
        nbeta=default_nbeta(cfg["num_samples"]),
        localization=cfg["sampler"]["localization"],
        num_chains=mr["num_chains"],
        num_steps=mr["num_steps"],
        num_burnin=mr["num_burnin"],
        seed=_seed(cfg, 0),
    )
    out.update(case=case["name"], num_steps=mr["num_steps"], num_chains=mr["num_chains"])
    return out


def calibrate(cfg: dict, device) -> tuple[pd.DataFrame, dict]:
    """The step size x nbeta sweep on the calibration case: (its table, the summary)."""
    cal = cfg["calibration"]
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
        device=device,
        mala_every=1,
    )
    table = result.table.assign(nbeta_factor=lambda t: t["nbeta"] / base)
    truth = float(dln_learning_coefficient(case["widths"], case["rank"])[0])
    summary = {"case": case["name"], "truth": truth, "best_step_size": result.best_step_size}
    summary["best_nbeta"] = result.best_nbeta
    summary["rank_count_lambda"] = float(rank_count_lambda(case["widths"], case["rank"]))
    picked = table[
        (table["nbeta"] == result.best_nbeta) & (table["step_size"] == result.best_step_size)
    ]
    summary["best_llc"] = float(picked["llc_mean"].iloc[0]) if len(picked) else None
    summary["best_healthy"] = bool(picked["healthy"].iloc[0]) if len(picked) else None
    return table, summary


def _row(est: dict) -> dict:
    llc = np.array([r["llc_mean"] for r in est["runs"]], dtype=float)
    acc = np.array([r["mala_acceptance"] for r in est["runs"]], dtype=float)
    row = {"kind": est["kind"], "name": est["name"], "truth": est["truth"]}
    row.update(truth_str=est["truth_str"], seeds=len(llc), mean=float(llc.mean()))
    row.update(std=float(llc.std(ddof=1)), mala=float(acc.mean()))
    row["se"] = row["std"] / math.sqrt(len(llc))
    row["diverged_chains"] = int(sum(r["diverged_chains"] for r in est["runs"]))
    row["healthy_seeds"] = int(sum(r["healthy"] for r in est["runs"]))
    row["max_rhat"] = max(r["rhat"] for r in est["runs"])
    row["min_ess_bulk"] = min(r["ess_bulk"] for r in est["runs"])
    paper = PAPER_SGLD.get(est["name"]) if est["kind"] == "normal_crossing" else None
    row["paper_mean"], row["paper_std"] = paper if paper else (math.nan, math.nan)
    if est["kind"] == "normal_crossing":
        ref = np.array([r["reference"] for r in est["runs"]], dtype=float)
        row.update(reference_mean=float(ref.mean()), reference_std=float(ref.std(ddof=1)))
        row.update(_paired_z(llc - ref, "ref"))
        row["ref_z_null"] = _paired_z(-ref, "ref")["ref_z"]  # an estimator that reads 0
    else:
        row["rank_count_lambda"] = float(rank_count_lambda(est["widths"], est["rank"]))
    return row


def _paired_z(diff: np.ndarray, name: str) -> dict:
    """Mean of per-seed differences, its standard error (std / sqrt(seeds)) and their ratio."""
    mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
    return {f"{name}_diff": mean, f"{name}_se": se, f"{name}_z": mean / se if se > 0 else None}


def collect(
    ests: list[dict], cal: list[dict], malas: list[dict]
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Table 1 (+ locality and DLN rows), the diagnostics of every estimate and the flat
    metrics the claims read, from the estimates, calibration summaries and MALA references."""
    table = pd.DataFrame([_row(e) for e in ests])
    # the evidence behind every estimate: one row per case and seed
    diagnostics = pd.DataFrame(
        [
            {"name": e["name"], "truth": e["truth"], **{k: r[k] for k in ROW_FIELDS}}
            for e in ests
            for r in e["runs"]
        ]
    )
    metrics = {}
    for row, est in zip(table.to_dict("records"), ests, strict=True):
        err = abs(row["mean"] - row["truth"])
        key = row["name"]
        metrics[f"{key}_mean"] = row["mean"]
        metrics[f"{key}_std"] = row["std"]
        metrics[f"{key}_se"] = row["se"]
        if row["kind"] == "normal_crossing":
            metrics[f"{key}_abs_error"] = err
            # a test of the mean: the spread of the mean over seeds is the standard error
            metrics[f"{key}_truth_within_2se"] = bool(err <= 2 * row["se"])
            for name in ("reference_mean", "ref_diff", "ref_se", "ref_z", "ref_z_null"):
                metrics[f"{key}_{name}"] = row[name]
        else:
            metrics[f"{key}_rel_error"] = err / row["truth"]
            metrics[f"{key}_rank_count_rel_error"] = (
                abs(row["rank_count_lambda"] - row["truth"]) / row["truth"]
            )
        metrics[f"{key}_diverged_chains"] = row["diverged_chains"]
        # every seed's estimate passed the health verdict (sltrepro.llc_diagnostics)
        seeds = [f"seed {r['seed']}" for r in est["runs"]]
        metrics |= health_metrics(est["runs"], f"{key}_", labels=seeds)
    by_est = {e["name"]: e for e in ests}
    for mala in malas:
        key = mala["case"]
        llc = np.array([r["llc_mean"] for r in by_est[key]["runs"]], dtype=float)
        ref = np.array(mala["reference"], dtype=float)
        metrics[f"{key}_mala_reference_mean"] = float(ref.mean())
        metrics[f"{key}_mala_acceptance"] = float(np.mean(mala["acceptance"]))
        for name, value in _paired_z(llc - ref, "mala_ref").items():
            metrics[f"{key}_{name}"] = value
        metrics[f"{key}_mala_ref_z_null"] = _paired_z(-ref, "mala_ref")["mala_ref_z"]
    by_name = {row["name"]: row for row in table.to_dict("records")}
    if {"two_min_origin", "two_min_far"} <= set(by_name):
        near, far = by_name["two_min_origin"], by_name["two_min_far"]
        gap = far["mean"] - near["mean"]
        metrics["locality_gap"] = gap
        metrics["locality_gap_se"] = math.hypot(near["se"], far["se"])
        metrics["locality_gap_z"] = gap / metrics["locality_gap_se"]
        metrics["locality_gap_reference"] = far["reference_mean"] - near["reference_mean"]
    if cal:
        c = cal[0]
        metrics["calibration_best_step_size"] = c["best_step_size"]
        metrics["calibration_found_stable"] = c["best_step_size"] is not None
        best = c.get("best_llc")
        metrics["calibration_best_llc"] = best
        # the health verdict of the picked setting's estimate (no reasons: the sweep keeps none)
        metrics["calibration_best_llc_healthy"] = c.get("best_healthy")
        metrics["calibration_best_rel_error"] = (
            None if best is None else abs(best - c["truth"]) / c["truth"]
        )
        metrics["calibration_rank_count_rel_error"] = (
            abs(c["rank_count_lambda"] - c["truth"]) / c["truth"]
        )
    return table, diagnostics, metrics
