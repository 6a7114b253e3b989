"""Chen, Lau, Mendel, Wei & Murfet (2023): dynamical versus Bayesian phase transitions in a
toy model of superposition (TMS, c = 6 features, r = 2 hidden dimensions).

Method, as the steps run it:

1. ``critical``: the closed-form population loss (``sltrepro.models.tms``, the paper's
   Lemma 3.1) at the regular k-gon critical points (Sec. 4): (l*, b*) solved on the k-gon
   family, the gradient in all 3c directions, a Monte Carlo estimate beside each loss.
2. ``llc``: the SGLD local learning coefficient (``sltrepro.llc``) at one critical point, on
   several training sets (seeds), all chains batched, after a short full-batch descent on
   the training set itself (the estimator needs w* critical for L_n, not only for L).
3. ``bayes``: the posterior p_n(w) ∝ exp(-n L_n(w)) phi(w) at one sample size n, sampled by
   MALA chains started half at 5-gons and half at 6-gons; the phase of a sample is its
   number k of live columns. The two halves must agree (mixing check).
4. ``sgd``: many SGD trajectories from a small random initialisation, trained as one stack.
5. ``sgd_llc``: plateaus of each trajectory's population loss (``sltrepro.plateaus``) and the
   LLC at the middle of each plateau, for the first ``llc_seeds`` trajectories.
6. ``analyze``: the free-energy prediction n L_k + lambda_k log n of the transition, the
   measured transition, the plateau statistics against their nulls, metrics.json.
"""

import math

import numpy as np
import pandas as pd
import torch

from sltrepro.health import health_metrics
from sltrepro.llc import SamplerSettings, estimate_llc, estimate_llc_trajectory
from sltrepro.models.tms import (
    KGon,
    ToyModel,
    classify,
    monte_carlo_loss,
    phase_name,
    population_loss,
    sample_inputs,
    solve_kgon,
    squared_error,
)
from sltrepro.papers.tms_phase_transitions import posterior
from sltrepro.plateaus import find_plateaus
from sltrepro.train.tms import train_stack

DTYPE = torch.float64


# ----------------------------------------------------------------------------- step 1
def critical_points(config: dict) -> list[KGon]:
    """Every k-gon critical point the config lists, e.g. {c: 6, k: 5, extras: "+"}."""
    return [solve_kgon(p["k"], p["c"], p["extras"]) for p in config["critical_points"]]


def point_by_name(config: dict, name: str) -> KGon:
    points = {f"{p.name}_c{p.c}": p for p in critical_points(config)}
    if name not in points:
        raise KeyError(f"unknown critical point {name!r}; config has {sorted(points)}")
    return points[name]


def gradient_max(weight, bias) -> float:
    """max |dL/dtheta| of the closed form over all 3c parameters."""
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    gw, gb = torch.autograd.grad(population_loss(w, b), (w, b))
    return float(torch.cat([gw.flatten(), gb]).abs().max())


def critical_table(config: dict) -> pd.DataFrame:
    """One row per critical point plus ``num_random_points`` random parameters (the null
    of criticality and a second test of the closed form off the critical set)."""
    cfg = config["critical"]
    gen = torch.Generator().manual_seed(config["seed"])
    rows = []
    for point in critical_points(config):
        weight, bias = point.params(rotation=float(torch.rand(1, generator=gen)) * 2 * math.pi)
        rows.append(
            {
                "name": point.name,
                "k": point.k,
                "c": point.c,
                "length": point.length,
                "bias": point.bias,
                "kind": "kgon",
                **_loss_row(weight, bias, cfg["mc_samples"], gen),
            }
        )
    for i in range(cfg["num_random_points"]):
        c = config["c"]
        weight = torch.randn(2, c, generator=gen, dtype=DTYPE)
        bias = 0.5 * torch.randn(c, generator=gen, dtype=DTYPE)
        rows.append(
            {
                "name": f"random{i}",
                "k": -1,
                "c": c,
                "length": np.nan,
                "bias": np.nan,
                "kind": "random",
                **_loss_row(weight, bias, cfg["mc_samples"], gen),
            }
        )
    return pd.DataFrame(rows)


def _loss_row(weight, bias, mc_samples: int, gen) -> dict:
    mc, se = monte_carlo_loss(weight, bias, mc_samples, gen)
    closed = float(population_loss(weight, bias))
    return {
        "loss": closed,
        "loss_mc": mc,
        "loss_mc_se": se,
        "mc_z": (closed - mc) / se,
        "grad_max": gradient_max(weight, bias),
    }


# ----------------------------------------------------------------------------- step 2
def refine_on_data(weight, bias, x, *, lr: float, steps: int):
    """Full-batch gradient descent on L_n from (weight, bias): the training set's own
    critical point next to the population one."""
    model = ToyModel(weight, bias)
    for _ in range(steps):
        loss = squared_error(model(x), x)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p.sub_(g, alpha=lr)
    return model


def llc_at_point(config: dict, name: str, *, verbose=True) -> tuple[pd.DataFrame, np.ndarray]:
    """LLC estimates at one critical point: one row per training-set seed, and the first
    seed's (C, D) LLC trace nbeta * (L(w) - L(w*)) for the trace figure."""
    cfg = config["llc"]
    point = point_by_name(config, name)
    rows, first_trace = [], None
    for i in range(cfg["num_seeds"]):
        seed = config["seed"] + i
        gen = torch.Generator().manual_seed(seed)
        x = sample_inputs(cfg["n_samples"], point.c, gen)
        weight, bias = point.params(rotation=float(torch.rand(1, generator=gen)) * 2 * math.pi)
        model = refine_on_data(weight, bias, x, **cfg["refine"])
        k, extras = classify(model.weight.detach(), model.bias.detach())
        result = estimate_llc(
            model,
            squared_error,
            (x, x),
            SamplerSettings.from_config(cfg),
            seed=seed,
            device="cpu",
            verbose=verbose,
        )
        rows.append(
            {
                "point": name,
                "seed": seed,
                "phase_after_refine": phase_name(k, extras),
                **result.summary_row(),
            }
        )
        if first_trace is None:
            first_trace = result.llc_trace
    return pd.DataFrame(rows), first_trace


# ----------------------------------------------------------------------------- step 3
def bayes_chains(config: dict, n: int, *, verbose=True) -> tuple[pd.DataFrame, dict]:
    """MALA on p_n; returns per (draw, chain) phases and the sampler's summary.

    Chains start at randomly turned and permuted 5-gons (even chains) and 6-gons (odd);
    the step size adapts during the first ``num_adapt`` steps only, draws are kept every
    ``thin`` steps after ``num_burnin``.
    """
    cfg = config["bayes"]
    c = config["c"]
    gen = torch.Generator().manual_seed(config["seed"] * 7919 + n)
    x = sample_inputs(n, c, gen)
    starts = [solve_kgon(5, c, "-" * (c - 5)), solve_kgon(6, c, "-" * (c - 6))]
    weights, biases = [], []
    for i in range(cfg["num_chains"]):
        w, b = starts[i % 2].params(rotation=float(torch.rand(1, generator=gen)) * 2 * math.pi)
        perm = torch.randperm(c, generator=gen)
        weights.append(w[:, perm])
        biases.append(b[perm])
    state = posterior.init(torch.stack(weights), torch.stack(biases), x, cfg["prior_std"])
    step_size = torch.full((cfg["num_chains"],), cfg["initial_step_size"] / n, dtype=DTYPE)
    rows, acc = [], []
    total = cfg["num_burnin"] + cfg["num_draws"]
    for t in range(total):
        state, info = posterior.step(state, x, cfg["prior_std"], step_size, gen)
        if t < cfg["num_adapt"]:
            step_size = posterior.adapt_step_size(step_size, info.acceptance)
        if t >= cfg["num_burnin"]:
            acc.append(info.acceptance)
            if (t - cfg["num_burnin"]) % cfg["thin"] == 0:
                for chain in range(cfg["num_chains"]):
                    k, extras = classify(state.weight[chain], state.bias[chain])
                    rows.append(
                        {
                            "n": n,
                            "step": t,
                            "chain": chain,
                            "start": 5 + chain % 2,
                            "k": k,
                            "phase": phase_name(k, extras),
                            "loss": float(-state.logp[chain]) / n,
                        }
                    )
    summary = {
        "n": n,
        "mala_acceptance": float(torch.stack(acc).mean()),
        "step_size_mean": float(step_size.mean()),
    }
    return pd.DataFrame(rows), summary


def occupancy(draws: pd.DataFrame) -> pd.DataFrame:
    """Fraction of draws with k live columns, per n, overall and per starting polygon."""
    rows = []
    for n, group in draws.groupby("n"):
        row = {"n": n}
        for k in (4, 5, 6):
            row[f"occ{k}"] = float((group.k == k).mean())
            for start in (5, 6):
                sub = group[group.start == start]
                row[f"occ{k}_start{start}"] = float((sub.k == k).mean())
        row["occ6_se"] = chain_standard_error(group, 6)
        # phase switches per chain: how often a chain's k changes between kept draws
        switches = (
            group.sort_values("step").groupby("chain").k.apply(lambda s: (s.diff() != 0).sum() - 1)
        )
        row["switches_per_chain"] = float(switches.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def chain_standard_error(group: pd.DataFrame, k: int) -> float:
    """Standard error of an occupancy from the spread of the per-chain occupancies (chains
    are the independent units; draws within a chain are correlated)."""
    per_chain = group.groupby("chain").k.apply(lambda s: (s == k).mean())
    return float(per_chain.std(ddof=1) / math.sqrt(len(per_chain)))


def predicted_transition(loss_low: float, lam_low: float, loss_high: float, lam_high: float):
    """The n > Δλ/ΔL at which n L + λ log n is equal for the two phases (the larger root of
    n ΔL = Δλ log n); None if the high-λ phase never wins."""
    d_loss, d_lam = loss_low - loss_high, lam_high - lam_low
    if d_loss <= 0 or d_lam <= 0:
        return None
    n = max(3.0, 2 * d_lam / d_loss)
    for _ in range(200):  # fixed point n = Δλ log n / ΔL, contracting above Δλ/ΔL
        n = d_lam * math.log(n) / d_loss
    return n


def measured_transition(occ: pd.DataFrame):
    """First n (interpolated in log n) where the 6-gon's occupancy passes the 5-gon's."""
    occ = occ.sort_values("n")
    gap = (occ.occ6 - occ.occ5).to_numpy()
    ns = occ.n.to_numpy(dtype=float)
    if gap[0] > 0:
        return 0.0  # the 6-gon already dominates at the smallest n: no transition seen
    for i in range(1, len(gap)):
        if gap[i] > 0 >= gap[i - 1]:
            frac = -gap[i - 1] / (gap[i] - gap[i - 1])
            return float(math.exp(math.log(ns[i - 1]) + frac * math.log(ns[i] / ns[i - 1])))
    return None


# ----------------------------------------------------------------------------- step 4
def sgd_seeds(config: dict) -> list[int]:
    return [config["seed"] + i for i in range(config["sgd"]["num_seeds"])]


def sgd_data(config: dict, seeds) -> torch.Tensor:
    """(S, n, c): each trajectory's own training set."""
    n = config["sgd"]["n_samples"]
    return torch.stack(
        [
            sample_inputs(n, config["c"], torch.Generator().manual_seed(10_000 + int(s)))
            for s in seeds
        ]
    )


def sgd_init(config: dict, seeds):
    """W entries N(0, init_std^2), b = 0, one generator per seed."""
    cfg, c = config["sgd"], config["c"]
    weights = [
        cfg["init_std"] * torch.randn(2, c, generator=torch.Generator().manual_seed(s), dtype=DTYPE)
        for s in seeds
    ]
    return torch.stack(weights), torch.zeros(len(seeds), c, dtype=DTYPE)


def log_spaced(total: int, count: int) -> np.ndarray:
    return np.unique(
        np.concatenate([[0], np.round(np.logspace(0, math.log10(total), count))]).astype(int)
    )


def train_sgd(config: dict, *, verbose=True) -> dict:
    """The stack of SGD trajectories: their logged arrays."""
    cfg = config["sgd"]
    seeds = sgd_seeds(config)
    weight, bias = sgd_init(config, seeds)
    hist = train_stack(
        weight,
        bias,
        sgd_data(config, seeds),
        seeds,
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        num_steps=cfg["num_steps"],
        log_steps=log_spaced(cfg["num_steps"], cfg["log_points"]),
        verbose=verbose,
    )
    arrays = {
        "steps": hist.steps,
        "loss": hist.loss,
        "train_loss": hist.train_loss,
        "weight": hist.weight,
        "bias": hist.bias,
        "seed": np.array(seeds),
    }
    return arrays


# ----------------------------------------------------------------------------- step 5
def plateau_table(config: dict, arrays: dict) -> pd.DataFrame:
    """One row per detected plateau of every trajectory: level, phase at its middle, the
    nearest k-gon critical loss."""
    levels = {
        f"{p.name}": float(population_loss(*p.params()))
        for p in critical_points(config)
        if p.c == config["c"]
    }
    rows = []
    for s, seed in enumerate(arrays["seed"]):
        plateaus = find_plateaus(
            np.maximum(arrays["steps"], 0.5), arrays["loss"][s], **config["plateau"]
        )
        for index, p in enumerate(plateaus):
            weight, bias = arrays["weight"][s, p.middle], arrays["bias"][s, p.middle]
            k, extras = classify(torch.as_tensor(weight), torch.as_tensor(bias))
            nearest = min(levels, key=lambda name: abs(levels[name] - p.level))
            rows.append(
                {
                    "seed": int(seed),
                    "index": index,
                    "start": int(p.start),
                    "end": int(p.end),
                    "middle": int(p.middle),
                    "step": int(arrays["steps"][p.middle]),
                    "level": p.level,
                    "phase": phase_name(k, extras),
                    "k": k,
                    "nearest": nearest,
                    "nearest_loss": levels[nearest],
                    "rel_gap": abs(p.level - levels[nearest]) / levels[nearest],
                }
            )
    return pd.DataFrame(rows)


def sgd_llc(config: dict, arrays: dict, *, verbose=True) -> pd.DataFrame:
    """LLC at the middle of every plateau of up to ``llc_seeds`` trajectories, on each
    trajectory's own training set.

    The trajectories are the first ones (in seed order) with at least two plateaus away
    from the origin (k >= 1 live columns): only they have a transition between two k-gons
    to test, and the choice looks at the loss curve only, never at an LLC.
    """
    cfg = config["sgd"]
    table = plateau_table(config, arrays)
    counts = table[table.k >= 1].groupby("seed").size()
    chosen = [int(s) for s in arrays["seed"] if counts.get(int(s), 0) >= 2][: cfg["llc_seeds"]]
    rows = []
    for seed in chosen:
        s = int(np.nonzero(arrays["seed"] == seed)[0][0])
        x = sgd_data(config, [seed])[0]
        plateaus = list(table[table.seed == seed].itertuples())
        models = [
            ToyModel(
                torch.as_tensor(arrays["weight"][s, row.middle]),
                torch.as_tensor(arrays["bias"][s, row.middle]),
            )
            for row in plateaus
        ]
        # all plateaus of the trajectory in one run: the same numbers as one call each
        results = estimate_llc_trajectory(
            None,
            models,
            squared_error,
            (x, x),
            SamplerSettings.from_config(config["llc"]),
            seed=seed,
            device="cpu",
            verbose=verbose,
        )
        for row, result in zip(plateaus, results, strict=True):
            rows.append(
                {
                    "seed": seed,
                    "index": row.index,
                    "step": row.step,
                    "level": row.level,
                    "phase": row.phase,
                    "llc_mean": result.llc_mean,
                    "llc_std": result.llc_std,
                    "llc_se": result.llc_std / math.sqrt(len(result.llc_per_chain)),
                    "diverged_chains": int(result.diverged.sum()),
                    "rhat": result.rhat,
                    "ess_bulk": result.ess_bulk,
                    "healthy": result.healthy,
                }
            )
    columns = [
        "seed",
        "index",
        "step",
        "level",
        "phase",
        "llc_mean",
        "llc_std",
        "llc_se",
        "diverged_chains",
        "rhat",
        "ess_bulk",
        "healthy",
    ]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- step 6
def pattern_test(llc_table: pd.DataFrame) -> dict:
    """Loss down and LLC up across every transition of a trajectory (>= 2 plateaus).

    Null: the LLC order of a trajectory's m plateaus is a random permutation (loss order is
    fixed by time), so the pattern holds with probability 1/m!; the p-value is the chance
    that at least the observed number of trajectories show it under that null (a sum of
    independent Bernoullis, computed exactly by convolution).

    Plateaus whose LLC estimate is negative are left out: there w* is a saddle (the chains
    slide off it, e.g. the origin's 0++++++ plateau) and the LLC is undefined; keeping them
    would make the pattern hold by construction.
    """
    shown, null = [], []
    valid = llc_table[llc_table.llc_mean > 0]
    for _, group in valid.sort_values("index").groupby("seed"):
        if len(group) < 2:
            continue
        down = bool(np.all(np.diff(group.level.to_numpy()) < 0))
        up = bool(np.all(np.diff(group.llc_mean.to_numpy()) > 0))
        shown.append(down and up)
        null.append(1 / math.factorial(len(group)))
    if not shown:
        return {
            "sgd_trajectories_tested": 0,
            "sgd_pattern_fraction": None,
            "sgd_pattern_null_fraction": None,
            "sgd_pattern_pvalue": None,
        }
    dist = np.array([1.0])
    for p in null:
        dist = np.convolve(dist, [1 - p, p])
    hits = int(sum(shown))
    return {
        "sgd_trajectories_tested": len(shown),
        "sgd_pattern_fraction": hits / len(shown),
        "sgd_pattern_null_fraction": float(np.mean(null)),
        "sgd_pattern_pvalue": float(dist[hits:].sum()),
    }


def chance_near_level(levels, lo: float, hi: float, rel_tol: float) -> float:
    """Null for "plateaus sit at critical losses": the chance that a level drawn uniformly
    in [lo, hi] lies within rel_tol of one of ``levels``."""
    covered = sum(
        min(hi, v * (1 + rel_tol)) - max(lo, v * (1 - rel_tol))
        for v in levels
        if v * (1 + rel_tol) > lo and v * (1 - rel_tol) < hi
    )
    return float(covered / (hi - lo))


def summarize(config, crit, llc, occ, bayes_summary, plateaus, sgd_llc_table, arrays) -> dict:
    """The flat metrics.json: claims read these keys."""
    m = {}
    kg = crit[crit.kind == "kgon"]
    m["closed_form_mc_max_abs_z"] = float(crit.mc_z.abs().max())
    m["kgon_grad_max"] = float(kg.grad_max.max())
    m["random_grad_min"] = float(crit[crit.kind == "random"].grad_max.min())
    for row in kg.itertuples():
        key = f"{row.name}_c{row.c}".replace("+", "p").replace("-", "m")
        m[f"loss_{key}"] = row.loss
        if row.k > 4:
            m[f"length_{key}"] = row.length
            m[f"bias_{key}"] = row.bias
    # LLC at the critical points: mean over seeds, standard error from the seed spread
    for point, group in llc.groupby("point"):
        key = point.replace("+", "p").replace("-", "m")
        m[f"llc_{key}"] = float(group.llc_mean.mean())
        m[f"llc_{key}_se"] = float(group.llc_mean.std(ddof=1) / math.sqrt(len(group)))
        # the estimator's health verdict (R-hat, ESS, drift, budgets) on every seed
        m |= health_metrics(group, f"llc_{key}_", labels=[f"seed {s}" for s in group.seed])
    if {"5-_c6", "6_c6"} <= set(llc.point):
        m["llc_6_minus_5m_c6"] = m["llc_6_c6"] - m["llc_5m_c6"]
        m["llc_6_minus_5m_c6_se"] = math.hypot(m["llc_6_c6_se"], m["llc_5m_c6_se"])
    m["llc_all_chains_healthy"] = bool(
        (llc.diverged_chains == 0).all()
        and (llc.trace_drift.abs() < config["llc"]["max_drift"]).all()
        and llc.healthy.all()
    )
    m["llc_mala_acceptance_min"] = float(llc.mala_acceptance.min())
    m["llc_refine_kept_phase"] = bool(
        (llc.phase_after_refine.astype(str) == llc.point.str.split("_").str[0]).all()
    )
    # Bayesian transition 5-gon -> 6-gon: predicted from our losses and the paper's lambdas
    lam = {p["name"]: p["lambda"] for p in config["paper_lambdas"]}
    loss5 = float(kg[(kg.k == 5) & (kg.c == config["c"]) & (kg.name == "5-")].loss.iloc[0])
    loss6 = float(kg[(kg.k == 6) & (kg.c == config["c"])].loss.iloc[0])
    n_pred = predicted_transition(loss5, lam["5-"], loss6, lam["6"])
    m["bayes_predicted_n"] = n_pred
    if occ is not None and len(occ):
        n_meas = measured_transition(occ)
        m["bayes_measured_n"] = n_meas
        m["bayes_measured_over_predicted"] = (
            n_meas / n_pred if n_meas is not None and n_pred else None
        )
        first, last = occ.sort_values("n").iloc[0], occ.sort_values("n").iloc[-1]
        m["bayes_occ_low_k_smallest_n"] = float(first.occ4 + first.occ5)
        m["bayes_occ6_largest_n"] = float(last.occ6)
        disagreement = (occ.occ6_start5 - occ.occ6_start6).abs()
        m["bayes_start_disagreement_max"] = float(disagreement.max())
        # the sample sizes at which the two starts agree (mixing across phases), from below
        mixed = occ.n[(disagreement > config["bayes"]["max_start_disagreement"]).cumsum() == 0]
        m["bayes_mixed_up_to_n"] = int(mixed.max()) if len(mixed) else None
        m["bayes_switches_per_chain_min"] = float(occ.switches_per_chain.min())
        m["bayes_mala_acceptance_min"] = float(min(s["mala_acceptance"] for s in bayes_summary))
    # SGD: plateaus at critical points, and the loss-down / LLC-up pattern
    tol = config["plateau_level_rtol"]
    m["sgd_num_trajectories"] = int(len(arrays["seed"]))
    m["sgd_num_plateaus"] = int(len(plateaus))
    m["sgd_plateaus_per_trajectory_mean"] = float(len(plateaus) / len(arrays["seed"]))
    m["sgd_plateaus_at_kgon_fraction"] = (
        float((plateaus.rel_gap <= tol).mean()) if len(plateaus) else None
    )
    levels = [
        float(population_loss(*p.params())) for p in critical_points(config) if p.c == config["c"]
    ]
    m["sgd_plateaus_at_kgon_null"] = chance_near_level(
        levels, float(arrays["loss"][:, -1].min()), float(arrays["loss"][:, 0].max()), tol
    )
    m["sgd_final_phase_5p_fraction"] = float(
        np.mean(
            [
                classify(
                    torch.as_tensor(arrays["weight"][s, -1]), torch.as_tensor(arrays["bias"][s, -1])
                )
                == (5, "+")
                for s in range(len(arrays["seed"]))
            ]
        )
    )
    m.update(pattern_test(sgd_llc_table))
    tested = sgd_llc_table[sgd_llc_table.llc_mean > 0]  # the plateaus the pattern reads
    m["sgd_llc_all_chains_healthy"] = bool(
        (tested.diverged_chains == 0).all() and tested.healthy.astype(bool).all()
    )
    m["sgd_llc_healthy_fraction"] = (
        float(tested.healthy.astype(bool).mean()) if len(tested) else None
    )
    m["sgd_llc_negative_plateaus"] = int((sgd_llc_table.llc_mean <= 0).sum())
    return m


def sgd_phase_sequences(plateaus: pd.DataFrame) -> pd.Series:
    """The sequence of plateau phases of each trajectory, e.g. '4++ > 5+'."""
    return plateaus.sort_values("index").groupby("seed").phase.apply(" > ".join)
