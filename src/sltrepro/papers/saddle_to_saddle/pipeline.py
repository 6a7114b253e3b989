"""Jacot, Ged, Şimşek, Hongler & Gabriel (2021): saddle-to-saddle dynamics of deep linear nets.

Method, as the steps run it:

1. ``train``: for each depth L, deep linear networks [d, w, ..., w, d] start from Gaussian
   layers with per-entry variance sigma^2 = w^-gamma over a sweep of gamma (NTK-like gamma < 1
   to saddle-to-saddle gamma > 1) and several seeds, and run full-batch gradient descent on
   the whitened population loss (1/2)||A - A*||_F^2 (A = W_L...W_1, A* = diag(target_diag)).
   Loss, A and its singular values are logged at log-spaced steps; the first time the loss
   crosses each midpoint between consecutive theoretical plateau levels is timed every step.
2. ``saxe``: a two-layer net from a balanced init aligned with the target's singular vectors,
   simulated with a small learning rate, against the closed form of Saxe et al. (2014).
3. ``llc``: one saddle-to-saddle trajectory of a bottleneck and of a wide architecture on a
   rank-r teacher; the LLC (SGLD, ``sltrepro.llc``) at checkpoints along it, next to
   Aoyagi's lambda at the current numerical rank.
4. ``structure``: one small-init and one large-init trajectory of a net wider than the
   rank-r teacher; every layer W_l on the first saddle after the origin (the end of the
   optimal escape path: rank 1, aligned with its neighbours, balanced) and at convergence
   (sparsity: rank r from a small init, full rank from a large one).
5. ``width_sweep``: one gamma < 1 and one gamma > 1 at growing width: the distance gradient
   descent travels to its global minimum and the first escape time (the gamma = 1 transition).
6. ``analyze``: plateaus and rank jumps found automatically (``sltrepro.plateaus``), plateau
   levels and maps against the theory, escape-time fits, metrics.json.

Time is continuous gradient-flow time t = lr * step throughout.
"""

import numpy as np
import pandas as pd
import torch

from sltrepro.health import health_metrics
from sltrepro.llc import SamplerSettings, estimate_llc_trajectory
from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.plateaus import find_plateaus
from sltrepro.theory import dln_learning_coefficient, rank_count_lambda, saxe_mode_trajectory
from sltrepro.train.dln import init_weights, log_spaced_steps, numerical_rank, train_dln

DTYPE = torch.float64  # sigma^L reaches 1e-50 for the smallest inits


# ----------------------------------------------------------------------------- theory
def target_matrix(diag) -> torch.Tensor:
    """A* = diag(diag): (d, d). Its singular values are |diag| sorted descending."""
    return torch.diag(torch.as_tensor(diag, dtype=DTYPE))


def singular_values(diag) -> np.ndarray:
    return np.sort(np.abs(np.asarray(diag, dtype=float)))[::-1].copy()


def plateau_levels(svals) -> np.ndarray:
    """Loss on the saddle of rank k, k = 0..r: (1/2) sum_{i>k} s_i^2 (whitened inputs)."""
    s2 = np.asarray(svals, dtype=float) ** 2
    return np.array([0.5 * s2[k:].sum() for k in range(len(s2) + 1)])


def escape_levels(svals) -> np.ndarray:
    """Midpoints between consecutive plateau levels: escaping saddle k = crossing level k."""
    levels = plateau_levels(svals)
    return 0.5 * (levels[:-1] + levels[1:])


def best_rank_k(target: np.ndarray, k: int) -> np.ndarray:
    """Eckart-Young: the closest rank-k matrix to ``target`` in Frobenius norm."""
    u, s, vt = np.linalg.svd(target)
    return (u[:, :k] * s[:k]) @ vt[:k]


def init_scale(width: int, gamma: float) -> float:
    """Per-entry std sigma with sigma^2 = width^-gamma."""
    return float(width) ** (-gamma / 2)


def depth_spec(config: dict, depth: int) -> dict:
    for spec in config["depths"]:
        if spec["depth"] == depth:
            return spec
    raise KeyError(f"depth {depth} is not in the config's depths")


def run_seeds(config: dict) -> list[int]:
    return [config["seed"] + i for i in range(config["num_seeds"])]


# ----------------------------------------------------------------------------- step 1
def train_sweep(config: dict, depth: int, checkpoint_path, *, device="cpu", verbose=True) -> dict:
    """Train every (seed, gamma) of one depth (resuming from ``checkpoint_path``); returns
    the logged arrays."""
    spec = depth_spec(config, depth)
    dim = len(config["target_diag"])
    widths = [dim] + [spec["width"]] * (depth - 1) + [dim]
    gammas = list(spec["gammas"])
    seeds = run_seeds(config)
    weights = init_weights(
        widths, [init_scale(spec["width"], g) for g in gammas], seeds, dtype=DTYPE, device=device
    )
    hist = train_dln(
        weights,
        target_matrix(config["target_diag"]).to(device),
        lr=spec["lr"],
        num_steps=spec["num_steps"],
        log_steps=log_spaced_steps(spec["num_steps"], config["log_points_per_decade"]),
        levels=escape_levels(singular_values(config["target_diag"])),
        checkpoint_path=checkpoint_path,
        checkpoint_every=config["checkpoint_every"],
        desc=f"train L={depth}",
        verbose=verbose,
    )
    arrays = {
        "time": hist.steps * spec["lr"],
        "loss": hist.loss,
        "product": hist.product,
        "svals": hist.svals,
        "escape_time": hist.crossings * spec["lr"],
        "gamma": np.tile(gammas, len(seeds)),
        "sigma": np.tile([init_scale(spec["width"], g) for g in gammas], len(seeds)),
        "seed": np.repeat(seeds, len(gammas)),
    }
    return arrays


# ----------------------------------------------------------------------------- step 2
def saxe_check(config: dict, seed: int) -> pd.DataFrame:
    """Two-layer GD from a balanced init aligned with A* = U diag(s) V^T vs Saxe's u(t).

    W_1 = sqrt(u0) V^T and W_2 = U sqrt(u0) (hidden width = d), so every mode starts at
    strength u0 and the modes decouple exactly. Returns one row per (logged step, mode).
    """
    cfg = config["saxe"]
    s = singular_values(config["target_diag"])
    dim = len(s)
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=DTYPE))
    v, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=DTYPE))
    target = u @ torch.diag(torch.as_tensor(s, dtype=DTYPE)) @ v.T
    root = np.sqrt(cfg["u0"])
    weights = [(root * v.T)[None].clone(), (root * u)[None].clone()]
    num_steps = int(round(cfg["time"] / cfg["lr"]))
    hist = train_dln(
        weights,
        target,
        lr=cfg["lr"],
        num_steps=num_steps,
        log_steps=np.linspace(0, num_steps, 401).astype(int),
        desc="saxe",
    )
    # Mode strengths: diagonal of U^T A V.
    modes = np.einsum("ik,tij,jk->tk", u.numpy(), hist.product[0], v.numpy())
    t = hist.steps * cfg["lr"]
    rows = []
    for k, sk in enumerate(s):
        exact = saxe_mode_trajectory(t, sk, cfg["u0"])
        rows.append(
            pd.DataFrame(
                {"time": t, "mode": k + 1, "s": sk, "simulated": modes[:, k], "closed_form": exact}
            )
        )
    return pd.concat(rows, ignore_index=True)


# ----------------------------------------------------------------------------- step 3
def llc_teacher(config: dict) -> torch.Tensor:
    """(d, d) rank-r teacher: diag(llc.target_singular_values, 0, ..., 0)."""
    cfg = config["llc"]
    diag = np.zeros(cfg["dim"])
    diag[: len(cfg["target_singular_values"])] = cfg["target_singular_values"]
    return target_matrix(diag)


def llc_dataset(config: dict, teacher: torch.Tensor, seed: int):
    """n inputs x ~ N(0, I) (the whitened input law the network is trained under) and
    noiseless targets y = A* x, float32."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(config["llc"]["n_samples"], teacher.shape[1], generator=gen)
    return x, x @ teacher.float().T


def half_squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of (1/2)||out - y||^2: the Gaussian NLL (unit noise) up to a
    constant, whose population value is exactly the training loss (1/2)||A - A*||_F^2."""
    return 0.5 * (out - y).pow(2).sum(-1).mean()


def snapshot_run(config, widths, init_std, seeds, target, *, lr, num_steps, **kwargs):
    """GD from a Gaussian init of per-entry std ``init_std`` (one run per seed), keeping every
    layer at every logged step (``log_points_per_decade``): for small nets and few runs.
    ``kwargs`` go to :func:`train_dln`."""
    weights = init_weights(widths, [init_std], seeds, dtype=DTYPE)
    log_steps = log_spaced_steps(num_steps, config["log_points_per_decade"])
    return train_dln(
        weights,
        target,
        lr=lr,
        num_steps=num_steps,
        log_steps=log_steps,
        snapshot_steps=log_steps,
        **kwargs,
    )


def llc_trajectory(
    config: dict, arch: str, checkpoint_path, *, verbose=True
) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Train one trajectory of architecture ``arch`` (resuming from ``checkpoint_path``) and
    estimate the LLC at K checkpoints: ``(table, the trajectory's time, loss, svals arrays,
    the (K, C, D) LLC traces of the table's rows)``."""
    cfg = config["llc"]
    if arch not in cfg["architectures"]:
        raise KeyError(
            f"unknown llc architecture {arch!r}; config has {list(cfg['architectures'])}"
        )
    widths = cfg["architectures"][arch]["widths"]
    seed = config["seed"]
    teacher = llc_teacher(config)
    hist = snapshot_run(
        config,
        widths,
        cfg["architectures"][arch]["init_std"],
        [seed],
        teacher,
        lr=cfg["lr"],
        num_steps=cfg["num_steps"],
        checkpoint_path=checkpoint_path,
        checkpoint_every=config["checkpoint_every"],
        desc=f"llc trajectory {arch}",
        verbose=verbose,
    )
    log_steps = hist.steps
    time = hist.steps * cfg["lr"]
    arrays = {"time": time, "loss": hist.loss[0], "svals": hist.svals[0]}
    # Checkpoints: evenly spaced among the (log-spaced) logged steps, plus the middle of every
    # detected plateau (the points closest to the saddles, where a rank's lambda applies).
    plateaus = find_plateaus(time, hist.loss[0], **config["plateau"])
    spread = np.linspace(1, len(log_steps) - 1, cfg["num_checkpoints"]).round().astype(int)
    middles = {p.middle: k for k, p in enumerate(plateaus)}
    checkpoints = np.unique(np.concatenate([spread, list(middles)]).astype(int))
    data = llc_dataset(config, teacher, seed)
    rank_tol = config["rank_rtol"] * float(max(cfg["target_singular_values"]))
    steps = [int(log_steps[index]) for index in checkpoints]
    nets = [
        DeepLinearNetwork.from_weights([torch.as_tensor(w[0]) for w in hist.snapshots[step]])
        for step in steps
    ]
    # every checkpoint in one run: the same numbers as one estimate_llc call each
    results = estimate_llc_trajectory(
        None,
        nets,
        half_squared_error,
        data,
        # On a plateau the per-sample loss is ~10^2-10^3, so minibatch losses scatter by
        # far more than the LLC signal: read each draw paired with w*'s loss on the same
        # minibatch (the divergence check then reads the paired difference too).
        SamplerSettings.from_config(cfg, paired=True),
        seed=seed,
        device="cpu",
        verbose=verbose,
    )
    rows = []
    for index, step, net, result in zip(checkpoints, steps, nets, results, strict=True):
        product = net.product().detach().double()
        rank = int(numerical_rank(torch.linalg.svdvals(product).numpy(), rank_tol))
        lam, _ = dln_learning_coefficient(widths, rank)
        rows.append(
            {
                "arch": arch,
                "step": step,
                "time": step * cfg["lr"],
                "plateau_index": middles.get(index, -1),
                "population_loss": 0.5 * float((product - teacher).pow(2).sum()),
                "rank": rank,
                "aoyagi_lambda": float(lam),
                "rank_count_lambda": float(rank_count_lambda(widths, rank)),
                **result.summary_row(),
            }
        )
    traces = np.stack([result.llc_trace for result in results]).astype(np.float32)
    return pd.DataFrame(rows), arrays, traces


# ----------------------------------------------------------------------------- step 4
def top_singular(w: np.ndarray):
    """(u_1, s, v_1) of an (n_out, n_in) matrix: top left/right singular vectors and every
    singular value, descending."""
    u, s, vt = np.linalg.svd(w)
    return u[:, 0], s, vt[0]


def layer_structure(weights) -> pd.DataFrame:
    """One row per layer l of ``weights`` (W_1..W_L, (n_out, n_in) arrays): the optimal
    escape path's three properties and the numerical rank.

    ``rank_one_ratio`` = s_2(W_l)/s_1(W_l) (0 for a rank-1 layer); ``alignment`` =
    |<u_1(W_l), v_1(W_{l+1})>| (1 when W_l's output direction is W_{l+1}'s input direction);
    ``imbalance`` = ||W_{l+1}^T W_{l+1} - W_l W_l^T||_F / ||W_l W_l^T||_F (0 when balanced);
    the last two are NaN for the last layer. ``svals`` keeps every singular value.
    """
    rows = []
    for l, w in enumerate(weights):
        u, s, _ = top_singular(w)
        row = {"layer": l + 1, "rank_one_ratio": s[1] / s[0] if len(s) > 1 else 0.0}
        row["alignment"] = row["imbalance"] = np.nan
        if l + 1 < len(weights):
            upper = weights[l + 1]
            row["alignment"] = abs(float(u @ top_singular(upper)[2]))
            gram = w @ w.T
            row["imbalance"] = np.linalg.norm(upper.T @ upper - gram) / np.linalg.norm(gram)
        rows.append(row | {"svals": s})
    return pd.DataFrame(rows)


def weight_ranks(svals, rtol: float) -> int:
    """Numerical rank of one layer: singular values above ``rtol`` times its largest."""
    svals = np.asarray(svals, dtype=float)
    return int((svals > rtol * svals[0]).sum())


def structure_runs(config: dict, *, verbose=True) -> pd.DataFrame:
    """Small- and large-init trajectories of ``structure.widths`` on the llc step's rank-r
    teacher; :func:`layer_structure` of every layer at init, on the first saddle after the
    origin (the middle of plateau 1, small init only) and at the end.

    Rows: init ("small"/"large"), gamma, seed, stage ("init", "plateau1", "final"), step,
    loss_ratio (loss over the initial loss), layer, rank_one_ratio, alignment, imbalance,
    rank (numerical, ``rank_rtol`` of the layer's top singular value).
    """
    cfg = config["structure"]
    teacher = llc_teacher(config)
    widths = cfg["widths"]
    seeds = run_seeds(config)
    rows = []
    for kind in ("small", "large"):
        spec = cfg[f"{kind}_init"]
        hist = snapshot_run(
            config,
            widths,
            init_scale(widths[1], spec["gamma"]),
            seeds,
            teacher,
            lr=spec["lr"],
            num_steps=spec["num_steps"],
            desc=f"structure {kind} init",
            verbose=verbose,
        )
        log_steps = hist.steps
        time = hist.steps * spec["lr"]
        for b, seed in enumerate(seeds):
            stages = {"init": 0, "final": len(log_steps) - 1}
            plateaus = find_plateaus(time, hist.loss[b], **config["plateau"])
            if kind == "small" and len(plateaus) > 1:
                stages["plateau1"] = plateaus[1].middle
            for stage, index in stages.items():
                step = int(log_steps[index])
                table = layer_structure([w[b] for w in hist.snapshots[step]])
                table["rank"] = [weight_ranks(s, config["rank_rtol"]) for s in table.svals]
                meta = {"init": kind, "gamma": spec["gamma"], "seed": seed, "stage": stage}
                meta |= {"step": step, "loss_ratio": hist.loss[b, index] / hist.loss[b, 0]}
                rows.append(table.drop(columns="svals").assign(**meta))
    return pd.concat(rows, ignore_index=True)


def width_sweep(config: dict, *, verbose=True) -> pd.DataFrame:
    """For one gamma < 1 ("ntk") and one gamma > 1 ("saddle") at every width of
    ``width_sweep.widths``: depth-L nets on the main target, trained to convergence.

    Rows: regime, gamma, width, seed, escape_time (first crossing of the first escape level,
    gradient-flow time), distance ||theta_end - theta_0|| (all layers, Frobenius),
    init_op_norm (largest spectral norm of a layer at init), loss_ratio (final over initial
    loss), n_plateaus.
    """
    cfg = config["width_sweep"]
    dim = len(config["target_diag"])
    target = target_matrix(config["target_diag"])
    seeds = run_seeds(config)
    rows = []
    for regime in ("ntk", "saddle"):
        spec = cfg[regime]
        for width in cfg["widths"]:
            widths = [dim] + [width] * (cfg["depth"] - 1) + [dim]
            weights = init_weights(widths, [init_scale(width, spec["gamma"])], seeds, dtype=DTYPE)
            start = [w.clone() for w in weights]
            hist = train_dln(
                weights,
                target,
                lr=spec["lr"],
                num_steps=spec["num_steps"],
                log_steps=log_spaced_steps(spec["num_steps"], config["log_points_per_decade"]),
                levels=escape_levels(singular_values(config["target_diag"]))[:1],
                desc=f"width sweep {regime} w={width}",
                verbose=verbose,
            )
            moved = sum(
                (w - w0).pow(2).sum(dim=(-2, -1)) for w, w0 in zip(weights, start, strict=True)
            )
            op_norm = torch.stack([torch.linalg.matrix_norm(w0, ord=2) for w0 in start]).amax(0)
            time = hist.steps * spec["lr"]
            for b, seed in enumerate(seeds):
                rows.append(
                    {
                        "regime": regime,
                        "gamma": spec["gamma"],
                        "width": width,
                        "seed": seed,
                        "escape_time": hist.crossings[b, 0] * spec["lr"],
                        "distance": float(moved[b].sqrt()),
                        "init_op_norm": float(op_norm[b]),
                        "loss_ratio": hist.loss[b, -1] / hist.loss[b, 0],
                        "n_plateaus": len(find_plateaus(time, hist.loss[b], **config["plateau"])),
                    }
                )
    return pd.DataFrame(rows)


def width_slopes(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (regime, seed), the least-squares slope of ln ``column`` against ln width:
    columns regime, seed, slope, r2 (NaN when a value is missing or not positive)."""
    rows = []
    for (regime, seed), group in table.groupby(["regime", "seed"]):
        y = group[column].to_numpy(float)
        if len(y) < 2 or not np.all(np.isfinite(y) & (y > 0)):
            slope = r2 = np.nan
        else:
            slope, _, r2 = fit_line(np.log(group.width.to_numpy(float)), np.log(y))
        rows.append({"regime": regime, "seed": seed, "slope": slope, "r2": r2})
    return pd.DataFrame(rows)


def gap_fraction(estimate: float, aoyagi: float, count: float) -> float:
    """(estimate - count) / (aoyagi - count): 0 where the estimate equals the stiff-direction
    count r(H_1 + H_{L+1} - r)/2, 1 where it equals Aoyagi's lambda; NaN where the two agree
    (the estimate cannot tell them apart there)."""
    if aoyagi == count:
        return np.nan
    return (estimate - count) / (aoyagi - count)


# ----------------------------------------------------------------------------- step 6
def plateau_table(arrays: dict, config: dict, depth: int) -> pd.DataFrame:
    """One row per detected plateau of every run of one depth, checked against the theory."""
    s = singular_values(config["target_diag"])
    levels = plateau_levels(s)
    target = target_matrix(config["target_diag"]).numpy()
    rank_tol = config["rank_rtol"] * s[0]
    rows = []
    for b in range(len(arrays["loss"])):
        plateaus = find_plateaus(arrays["time"], arrays["loss"][b], **config["plateau"])
        for k, p in enumerate(plateaus):
            product = arrays["product"][b, p.middle]
            best = best_rank_k(target, k)
            rows.append(
                {
                    "depth": depth,
                    "seed": int(arrays["seed"][b]),
                    "gamma": float(arrays["gamma"][b]),
                    "index": k,
                    "t_start": arrays["time"][p.start],
                    "t_end": arrays["time"][p.end],
                    "level": p.level,
                    "theory_level": levels[k] if k < len(levels) else np.nan,
                    "rank": int(numerical_rank(arrays["svals"][b, p.middle], rank_tol)),
                    "rel_dist_best_rank_k": (
                        np.linalg.norm(product - best) / np.linalg.norm(best) if k else np.nan
                    ),
                }
            )
    return pd.DataFrame(rows)


def plateau_counts(arrays: dict, config: dict, depth: int) -> pd.DataFrame:
    """Number of plateaus of every run of one depth: columns depth, seed, gamma, n_plateaus."""
    counts = [
        len(find_plateaus(arrays["time"], loss, **config["plateau"])) for loss in arrays["loss"]
    ]
    return pd.DataFrame(
        {"depth": depth, "seed": arrays["seed"], "gamma": arrays["gamma"], "n_plateaus": counts}
    )


def fit_line(x, y) -> tuple[float, float, float]:
    """Least squares y = a x + b: (slope a, intercept b, R^2)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    return float(slope), float(intercept), float(1 - resid.var() / y.var())


def escape_fits(arrays: dict, depth: int, min_gamma: float) -> pd.DataFrame:
    """Per seed, the first escape time against the init scale over gamma > min_gamma.

    L = 2: t_1 against ln(1/sigma) (theory: slope 1/s_1). L >= 3: ln t_1 against ln sigma
    (theory: slope -(L-2)). A run that never escaped makes its seed's fit NaN.
    """
    rows = []
    for seed in np.unique(arrays["seed"]):
        pick = (arrays["seed"] == seed) & (arrays["gamma"] > min_gamma)
        t1 = arrays["escape_time"][pick, 0]
        sigma = arrays["sigma"][pick]
        if np.isnan(t1).any() or pick.sum() < 3:
            slope = intercept = r2 = np.nan
        elif depth == 2:
            slope, intercept, r2 = fit_line(np.log(1 / sigma), t1)
        else:
            slope, intercept, r2 = fit_line(np.log(sigma), np.log(t1))
        rows.append({"depth": depth, "seed": int(seed), "slope": slope, "r2": r2, "n": pick.sum()})
    return pd.DataFrame(rows)


def _finite_or_none(value):
    value = float(value)
    return value if np.isfinite(value) else None


def showcase_final_ratio(arrays: dict) -> np.ndarray:
    """Final over initial loss of the largest-gamma runs (one per seed)."""
    pick = arrays["gamma"] == arrays["gamma"].max()
    return arrays["loss"][pick, -1] / arrays["loss"][pick, 0]


def structure_metrics(table: pd.DataFrame, target_rank: int) -> dict:
    """The escape-path and sparsity metrics of :func:`structure_runs`' table, each beside its
    null: the same statistic of the random init the runs start from."""
    small = table[table["init"] == "small"]
    found = small[small.stage == "plateau1"]
    metrics = {"structure_plateau1_found": bool(found.seed.nunique() == small.seed.nunique())}
    for stem, frame in (("escape_path", found), ("escape_path_init", small[small.stage == "init"])):
        metrics[f"{stem}_rank_one_ratio_max"] = _finite_or_none(frame.rank_one_ratio.max())
        metrics[f"{stem}_alignment_min"] = _finite_or_none(frame.alignment.min())
        metrics[f"{stem}_imbalance_max"] = _finite_or_none(frame.imbalance.max())
    final = table[table.stage == "final"]
    metrics["structure_converged_max_loss_ratio"] = float(final.loss_ratio.max())
    for kind in ("small", "large"):
        ranks = final[final["init"] == kind]["rank"]
        metrics[f"sparsity_{kind}_init_max_rank"] = int(ranks.max())
        metrics[f"sparsity_{kind}_init_min_rank"] = int(ranks.min())
    metrics["sparsity_init_max_rank"] = int(small[small.stage == "init"]["rank"].max())
    metrics["sparsity_target_rank"] = int(target_rank)
    return metrics


def width_metrics(table: pd.DataFrame) -> dict:
    """Slopes in ln width (mean over seeds) of the distance travelled and of the first escape
    time, per regime, and the largest final loss ratio of the sweep."""
    metrics = {"width_sweep_max_loss_ratio": float(table.loss_ratio.max())}
    for column, name in (("distance", "distance"), ("escape_time", "escape")):
        slopes = width_slopes(table, column)
        for regime, group in slopes.groupby("regime"):
            metrics[f"width_{regime}_{name}_slope"] = _finite_or_none(group.slope.mean())
    for (regime, width), group in table.groupby(["regime", "width"]):
        metrics[f"width_{regime}_w{width}_n_plateaus_max"] = int(group.n_plateaus.max())
    return metrics


def summarize(config, histories, plateaus, counts, fits, saxe, llc, structure, widths) -> dict:
    """The flat metrics.json: claims read these keys."""
    s = singular_values(config["target_diag"])
    rank = int((s > 0).sum())
    metrics = {}
    # Plateaus of the saddle-to-saddle showcase: the largest gamma of each depth.
    show = pd.concat(
        [
            counts[(counts.depth == L) & (counts.gamma == counts[counts.depth == L].gamma.max())]
            for L in counts.depth.unique()
        ]
    )
    show_p = plateaus.merge(show[["depth", "seed", "gamma"]], on=["depth", "seed", "gamma"])
    metrics["target_rank"] = rank
    metrics["showcase_all_converged"] = all(
        bool(np.all(showcase_final_ratio(arr) < config["plateau"]["converged_rtol"]))
        for arr in histories.values()
    )
    metrics["n_plateaus_min"] = int(show.n_plateaus.min())
    metrics["n_plateaus_max"] = int(show.n_plateaus.max())
    for L, group in show.groupby("depth"):
        metrics[f"n_plateaus_L{L}_min"] = int(group.n_plateaus.min())
    theory = show_p[show_p["index"] < rank]
    rel = (theory.level - theory.theory_level).abs() / theory.theory_level
    metrics["plateau_level_max_rel_err"] = _finite_or_none(rel.max()) if len(rel) else None
    metrics["plateau_rank_equals_index"] = bool(len(show_p)) and bool(
        (show_p["rank"] == show_p["index"]).all()
    )
    metrics["plateau_best_rank_k_max_rel_dist"] = _finite_or_none(show_p.rel_dist_best_rank_k.max())
    # NTK-like runs (gamma < 1) must not stall.
    ntk = counts[counts.gamma < 1]
    metrics["ntk_n_plateaus_max"] = int(ntk.n_plateaus.max()) if len(ntk) else None
    # Escape times.
    for L, group in fits.groupby("depth"):
        metrics[f"escape_L{L}_r2_min"] = _finite_or_none(group.r2.min())
        if L == 2:
            metrics["escape_L2_slope_times_s1"] = _finite_or_none(group.slope.mean() * s[0])
        else:
            metrics[f"escape_L{L}_loglog_slope"] = _finite_or_none(group.slope.mean())
    if 2 in histories:
        arr = histories[2]
        smallest = arr["gamma"] == arr["gamma"].max()
        ratio = arr["escape_time"][smallest, -1] / arr["escape_time"][smallest, 0]
        metrics["escape_L2_last_over_first"] = _finite_or_none(np.mean(ratio))
        metrics["theory_L2_last_over_first"] = float(s[0] / s[-1])
    # Saxe closed form.
    metrics["saxe_max_abs_err_rel_s"] = float(
        ((saxe.simulated - saxe.closed_form).abs() / saxe.s).max()
    )
    # LLC along the trajectory: the last checkpoint, and how far it is from Aoyagi's lambda.
    for arch, group in llc.groupby("arch"):
        last = group.sort_values("step").iloc[-1]
        metrics[f"llc_{arch}_final"] = _finite_or_none(last.llc_mean)
        metrics[f"llc_{arch}_final_aoyagi"] = float(last.aoyagi_lambda)
        metrics[f"llc_{arch}_final_rel_err"] = _finite_or_none(
            (last.llc_mean - last.aoyagi_lambda) / last.aoyagi_lambda
        )
        # the trivial predictor's error on the same net: what the LLC claims must beat
        metrics[f"llc_{arch}_final_rank_count_rel_err"] = float(
            (last.rank_count_lambda - last.aoyagi_lambda) / last.aoyagi_lambda
        )
        metrics[f"llc_{arch}_final_rank"] = int(last["rank"])
        # where the LLC can say more than a count of stiff directions: 0 = the count's value
        metrics[f"llc_{arch}_final_gap_fraction"] = _finite_or_none(
            gap_fraction(last.llc_mean, last.aoyagi_lambda, last.rank_count_lambda)
        )
        metrics[f"llc_{arch}_final_loss_ratio"] = float(
            last.population_loss / group.sort_values("step").iloc[0].population_loss
        )
        # the health verdict of each estimate above (sltrepro.llc_diagnostics)
        metrics |= health_metrics([last.to_dict()], f"llc_{arch}_final_", [f"step {last.step}"])
        for row in group[group.plateau_index >= 0].itertuples():
            metrics[f"llc_{arch}_plateau{row.plateau_index}"] = _finite_or_none(row.llc_mean)
            metrics[f"llc_{arch}_plateau{row.plateau_index}_aoyagi"] = float(row.aoyagi_lambda)
            stem, label = f"llc_{arch}_plateau{row.plateau_index}_", [f"step {row.step}"]
            metrics |= health_metrics([row._asdict()], stem, label)
    metrics |= structure_metrics(structure, len(config["llc"]["target_singular_values"]))
    metrics |= width_metrics(widths)
    return metrics
