"""Varma et al. 2023, "Explaining grokking through circuit efficiency", as pipeline steps.

Method (their Sec. 3-5, App. A), on a+b mod p with the one-layer transformer:

1. ``grok``: train on a fraction of all pairs with weight decay; log train/test loss and
   accuracy and the parameter norm at log-spaced steps, keep log-spaced snapshots.
   ``llc``: the local learning coefficient of each snapshot (our addition to the paper).
2. ``memorise``: memorisation-only nets (random labels, D from small to large) trained from
   scratch; ``generalise``: generalisation-only nets, the grokked ``pretrain`` nets continued
   on true-label subsets of large D until their norm settles. Parameter norm at the end vs D,
   and the share of the generalising nets' logits in their key Fourier frequencies.
3. ``pretrain`` + ``ungrok``: grok on a large set, then keep training on random subsets of
   size D' at several weight decays, each for the same decay budget (steps x weight decay);
   final test accuracy vs D' and the critical size D_crit.
4. ``semigrok``: train from scratch at D near D_crit for long and look for a plateau of
   middling test accuracy.
5. ``analyze``: the numbers the claims check, in ``metrics.json``: among them the theory's
   prediction, the D where the memorising and generalising norms cross, against D_crit.

Every training step trains all the models of its sweep as one vectorised stack.
"""

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import linregress, spearmanr

from sltrepro.llc import SamplerSettings, estimate_llc_trajectory
from sltrepro.models.modular_transformer import (
    ModularTransformer,
    TransformerShape,
    init_params,
    select,
    stacked_logits,
)
from sltrepro.tasks.modular import (
    all_pairs,
    make_batch,
    random_labels,
    split_indices,
    subset_indices,
)
from sltrepro.train.modular import AdamWSettings, log_spaced_steps, train

ACC_FOR_GROKKED = 0.95  # "test accuracy passes 0.95"
# A run has converged when its last TAIL of steps moved the parameter norm by under
# NORM_TOL (relative; the criterion) or the test accuracy by under ACC_TOL.
TAIL = 0.2
NORM_TOL = 0.01
ACC_TOL = 0.02
KEY_FREQUENCIES = 5  # Nanda et al.'s grokked nets at p = 113 use 5 key frequencies
BOOTSTRAP = 200  # seed resamples for the standard errors of D_crit and the crossover


# ---------------------------------------------------------------- shared helpers
def model_shape(config: dict) -> TransformerShape:
    return TransformerShape(p=config["p"], **config["model"])


def optimizer(config: dict) -> AdamWSettings:
    return AdamWSettings(**config["optimizer"])


def table(config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (p^2, 3) and true labels (p^2,) of the configured operation."""
    return all_pairs(config["p"], config["operation"])


def run_stack(
    config,
    device,
    checkpoint_path,
    name: str,
    params,
    batch,
    *,
    steps,
    weight_decay,
    snapshot_steps=(),
):
    """Train a stack, resuming from ``checkpoint_path``; returns (params, history, snaps)."""
    return train(
        {k: v.to(device) for k, v in params.items()},
        batch.to(device),
        steps=steps,
        weight_decay=weight_decay,
        settings=optimizer(config),
        log_steps=log_spaced_steps(steps, config["log_points"]),
        snapshot_steps=snapshot_steps,
        checkpoint_path=checkpoint_path,
        checkpoint_every=config["checkpoint_every"],
        desc=f"grokking_efficiency/{name}",
    )


def final_rows(history: pd.DataFrame, runs: list[dict]) -> pd.DataFrame:
    """The last logged row of every model, joined with its run description."""
    last = history[history.step == history.step.max()].sort_values("model")
    return pd.concat([pd.DataFrame(runs), last.reset_index(drop=True)], axis=1)


def size_buckets(sizes: list[int], ratio: float = 2.0) -> list[list[int]]:
    """Run indices grouped by training set size, each group spanning at most ``ratio`` in D.

    A stack pads every model to its largest D, so one stack over a geometric grid wastes up
    to (max D / mean D) of its work (2.3x on the cpu ungrokking grid); groups of similar D
    waste at most ``ratio``, at the price of one more stack per group.
    """
    groups: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        if groups and sizes[i] <= ratio * sizes[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def run_sweep(
    config,
    device,
    checkpoint_path,
    name: str,
    runs: list[dict],
    params: dict,
    label_tables,
    indices,
    *,
    steps: int,
    weight_decay,
    columns,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train the models of a sweep (run r: ``params`` row r, ``label_tables[r]`` on pairs
    ``indices[r]``) in stacks of similar D (:func:`size_buckets`). (history, final).

    ``columns(params, batch, history)`` adds per-model columns to a stack's final rows. Model
    ids in both tables are the run indices; each stack keeps its own resume checkpoint.
    """
    tokens, _ = table(config)
    groups = size_buckets([len(idx) for idx in indices])
    histories, finals = [], []
    for g, group in enumerate(groups):
        batch = make_batch(tokens, [label_tables[i] for i in group], [indices[i] for i in group])
        ckpt = checkpoint_path.with_name(f"{checkpoint_path.stem}_{g}{checkpoint_path.suffix}")
        trained, history, _ = run_stack(
            config,
            device,
            ckpt,
            f"{name} {g + 1}/{len(groups)}",
            {k: v[group] for k, v in params.items()},
            batch,
            steps=steps,
            weight_decay=weight_decay,
        )
        final = final_rows(history, [runs[i] for i in group])
        final = final.assign(**columns(trained, batch, history), model=group)
        histories.append(history.assign(model=history.model.map(dict(enumerate(group)))))
        finals.append(final)
    history = pd.concat(histories).sort_values(["step", "model"], kind="stable")
    return history.reset_index(drop=True), pd.concat(finals).sort_values("model").reset_index(
        drop=True
    )


# ---------------------------------------------------------------- 1. grokking
def grok(config: dict, checkpoint_path, device) -> tuple[pd.DataFrame, dict]:
    """One model trained on a fraction of the table: its history and the record of its
    snapshots (``train_indices``, ``snapshots``: step -> params) the LLC step reads."""
    g = config["grok"]
    tokens, labels = table(config)
    d = round(g["train_fraction"] * len(tokens))
    train_idx, _ = split_indices(len(tokens), d, seed=config["seed"])
    snapshot_steps = log_spaced_steps(g["steps"], g["llc_checkpoints"])
    params, history, snapshots = run_stack(
        config,
        device,
        checkpoint_path,
        "grok",
        init_params(model_shape(config), 1, seeds=config["seed"]),
        make_batch(tokens, [labels], [train_idx]),
        steps=g["steps"],
        weight_decay=g["weight_decay"],
        snapshot_steps=snapshot_steps,
    )
    saved = {
        "train_indices": train_idx,
        "snapshots": {s: select(p, 0) for s, p in snapshots.items()},
    }
    return history.assign(train_size=d), saved


def llc(config: dict, saved: dict, device, log) -> tuple[pd.DataFrame, np.ndarray]:
    """LLC (shared SGLD estimator) of every grokking snapshot on its training set: one row
    per snapshot, in step order, and the (K, C, D) LLC traces of those K rows."""
    s = config["llc"]
    tokens, labels = table(config)
    idx = saved["train_indices"]
    data = (tokens[idx], labels[idx])
    steps = sorted(saved["snapshots"])
    # the snapshots in stacked groups: the same numbers as one estimate_llc call each
    results = estimate_llc_trajectory(
        None,
        [ModularTransformer(saved["snapshots"][step]) for step in steps],
        F.cross_entropy,
        data,
        SamplerSettings.from_config(s),
        seed=config["seed"],
        device=device,
        max_stacked_checkpoints=s["max_stacked_checkpoints"],
    )
    rows = []
    for step, result in zip(steps, results, strict=True):
        rows.append({"step": step, **result.summary_row()})
        log.info("LLC at step %d: %.2f +- %.2f", step, result.llc_mean, result.llc_std)
    traces = np.stack([result.llc_trace for result in results]).astype(np.float32)
    return pd.DataFrame(rows), traces


# ---------------------------------------------------------------- 2. circuit efficiency
def memorise(config: dict, checkpoint_path, device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Memorisation-only nets: random labels, trained from scratch. (history, final).

    One model per (D, seed); parameter norm, train and test accuracy after ``steps``.
    """
    e = config["efficiency"]
    tokens, _ = table(config)
    runs = [
        {"kind": "memorise", "size": d, "seed": config["seed"] + s}
        for d in e["memorise_sizes"]
        for s in range(e["seeds"])
    ]
    label_tables = [random_labels(config["p"], seed=1000 + r["seed"]) for r in runs]
    indices = [split_indices(len(tokens), r["size"], seed=r["seed"])[0] for r in runs]
    return run_sweep(
        config,
        device,
        checkpoint_path,
        "memorise",
        runs,
        init_params(model_shape(config), len(runs), seeds=[r["seed"] for r in runs]),
        label_tables,
        indices,
        steps=e["steps"],
        weight_decay=e["weight_decay"],
        columns=circuit_columns,
    )


def generalise(
    config: dict, saved: dict, checkpoint_path, device
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generalisation-only nets: the grokked ``pretrain`` nets (``saved``) continued on
    true-label subsets of their training set, one per (D, seed), for ``generalise_steps``.
    (history, final).

    Starting from a grokked net makes the circuit a generalising one at every D of the
    sweep; from scratch, grokking near the smallest D takes longer than the cpu budget.
    """
    e = config["efficiency"]
    check_pretrained(saved, e["generalise_sizes"], e["seeds"])
    tokens, labels = table(config)
    runs = [
        {"kind": "generalise", "size": d, "seed": saved["seeds"][i], "pretrained": i}
        for d in e["generalise_sizes"]
        for i in range(e["seeds"])
    ]
    indices = [
        subset_indices(saved["indices"][r["pretrained"]], r["size"], seed=r["seed"]) for r in runs
    ]
    start = {k: v[[r["pretrained"] for r in runs]] for k, v in saved["params"].items()}
    return run_sweep(
        config,
        device,
        checkpoint_path,
        "generalise",
        runs,
        start,
        [labels] * len(runs),
        indices,
        steps=e["generalise_steps"],
        weight_decay=e["weight_decay"],
        columns=circuit_columns,
    )


def check_pretrained(saved: dict, sizes, seeds: int) -> None:
    """A sweep continues pretrained nets on subsets: it needs that many nets, that large."""
    size = min(len(idx) for idx in saved["indices"])
    if max(sizes) > size:
        raise ValueError(
            f"sizes up to {max(sizes)} are subsets of the pretraining set: raise "
            f"ungrok.pretrain_size ({size}) or lower the sizes"
        )
    if seeds > len(saved["seeds"]):
        raise ValueError(f"{seeds} seeds need as many pretrained nets, not {len(saved['seeds'])}")


def circuit_columns(params: dict, batch, history: pd.DataFrame) -> dict:
    """Per model of a trained stack: the share of its logits in its key Fourier
    frequencies (all frequencies too), its logit margin and unembedding norm (for the norm
    at a fixed logit scale), and whether its parameter norm had settled."""
    with torch.no_grad():
        logits = stacked_logits(params, batch.eval_tokens.to(params["W_U"].device)).cpu()
    p = logits.shape[-1]
    shares = [fourier_shares(m.double().view(p, p, p)) for m in logits]
    settled = settled_by_model(history, "param_norm", relative=NORM_TOL)
    return {
        "fourier_key_share": [k for k, _ in shares],
        "fourier_diagonal_share": [a for _, a in shares],
        "logit_margin": logit_margin(logits, batch.eval_labels, batch.train_mask).tolist(),
        "unembed_norm": params["W_U"].detach().flatten(1).norm(dim=1).cpu().tolist(),
        "norm_settled": settled.sort_index().values,
    }


def logit_margin(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(M,) mean over each model's training pairs of its correct-class logit minus the mean
    logit: the logit scale a circuit produces. logits (M, T, p), labels and mask (M, T)."""
    correct = logits.gather(-1, labels[..., None]).squeeze(-1) - logits.mean(-1)
    return (correct * mask).sum(1) / mask.sum(1)


def norm_at_logit_scale(frame: pd.DataFrame, scale: float) -> pd.Series:
    """The paper's efficiency measure, per net: its parameter norm once the logits are
    brought to the same ``scale`` (nats of margin) by rescaling the unembedding, the one
    weight the logits are exactly linear in. A more efficient circuit needs less norm."""
    factor = scale / frame.logit_margin
    rest = frame.param_norm**2 - frame.unembed_norm**2
    return np.sqrt(rest + (factor * frame.unembed_norm) ** 2)


def fourier_shares(logits: torch.Tensor, keys: int = KEY_FREQUENCIES) -> tuple[float, float]:
    """Share of a net's logit norm^2 in the trigonometric circuit of a + b = c.

    logits: (p, p, p) indexed [a, b, c]. The circuit's logits are sums of
    cos(w_k (a + b - c) + phase), which live exactly on the Fourier components
    (k, k, -k) and (-k, -k, k). Logits are centred over c first (softmax ignores a shift).
    Returns (share in the ``keys`` strongest such frequencies, share in all of them).
    """
    p = logits.shape[0]
    centred = logits - logits.mean(dim=2, keepdim=True)
    power = torch.fft.fftn(centred).abs().pow(2)
    k = torch.arange(1, p)
    diagonal = power[k, k, (-k) % p]  # k and p - k are the conjugate pair of one frequency
    per_frequency = diagonal[: (p - 1) // 2] + diagonal.flip(0)[: (p - 1) // 2]
    total = power.sum()
    key = per_frequency.sort(descending=True).values[:keys].sum()
    return float(key / total), float(per_frequency.sum() / total)


def settled_by_model(history: pd.DataFrame, column: str, *, relative=None, absolute=None):
    """Per model (Series over ``model``): whether ``column`` moved by less than the tolerance
    over the last TAIL of the logged steps (relative to its final value, or absolute)."""
    last = history.step.max()
    start = history.step[history.step <= (1 - TAIL) * last].max()
    at = history.set_index(["step", "model"])[column]
    change = (at.loc[last] - at.loc[start]).abs()
    if relative is not None:
        return change / at.loc[last].abs() < relative
    return change < absolute


# ---------------------------------------------------------------- 3. ungrokking
def pretrain(config: dict, checkpoint_path, device) -> tuple[pd.DataFrame, dict]:
    """One grokked model per ungrokking seed, trained on ``pretrain_size`` pairs: the history
    and the record (``params``, ``indices``, ``seeds``) the ungrokking runs start from."""
    u = config["ungrok"]
    tokens, labels = table(config)
    seeds = [config["seed"] + s for s in range(pretrain_seeds(config))]
    indices = [split_indices(len(tokens), u["pretrain_size"], seed=s)[0] for s in seeds]
    params, history, _ = run_stack(
        config,
        device,
        checkpoint_path,
        "pretrain",
        init_params(model_shape(config), len(seeds), seeds=seeds),
        make_batch(tokens, [labels] * len(seeds), indices),
        steps=u["pretrain_steps"],
        weight_decay=u["pretrain_weight_decay"],
    )
    params = {k: v.cpu() for k, v in params.items()}
    return history, {"params": params, "indices": indices, "seeds": seeds}


def pretrain_seeds(config: dict) -> int:
    """Pretrained nets: enough for both the ungrokking and the generalisation sweeps."""
    return max(config["ungrok"]["seeds"], config["efficiency"]["seeds"])


def ungrok_steps(config: dict, wd: float) -> int:
    """Steps of the ungrokking run at weight decay ``wd``: the same decay budget
    (steps x wd) for every wd, so that a lower wd is not judged before it had time to act."""
    return max(1, round(config["ungrok"]["decay_budget"] / wd))


def ungrok(
    config: dict, wd: float, saved: dict, checkpoint_path, device
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weight decay ``wd``: continue the first ``seeds`` pretrained models (``saved``, from
    ``pretrain``) on subsets of size D' for ``ungrok_steps``. (history, final).

    Model (seed s, D') starts from pretrained model s and trains on a random D'-subset of
    its pretraining set; test accuracy is measured on all other pairs. ``final`` says per
    model whether its test accuracy had settled.
    """
    u = config["ungrok"]
    check_pretrained(saved, u["sizes"], u["seeds"])
    tokens, labels = table(config)
    runs = [
        {"weight_decay": wd, "size": d, "seed": saved["seeds"][i], "pretrained": i}
        for d in u["sizes"]
        for i in range(u["seeds"])
    ]
    indices = [
        subset_indices(saved["indices"][r["pretrained"]], r["size"], seed=r["seed"]) for r in runs
    ]
    start = {k: v[[r["pretrained"] for r in runs]] for k, v in saved["params"].items()}
    # the same step count for every wd: the shortest run's, where a budget effect shows
    equal = min(ungrok_steps(config, w) for w in u["weight_decays"])

    def columns(_params, _batch, history: pd.DataFrame) -> dict:
        early = history[history.step == history.step[history.step <= equal].max()]
        early = early.sort_values("model")
        return {
            "test_acc_settled": settled_by_model(history, "test_acc", absolute=ACC_TOL)
            .sort_index()
            .values,
            "equal_step": early.step.values,
            "test_acc_equal_steps": early.test_acc.values,
        }

    return run_sweep(
        config,
        device,
        checkpoint_path,
        "ungrok",
        runs,
        start,
        [labels] * len(runs),
        indices,
        steps=ungrok_steps(config, wd),
        weight_decay=wd,
        columns=columns,
    )


# ---------------------------------------------------------------- 4. semi-grokking
def semigrok(config: dict, checkpoint_path, device) -> pd.DataFrame:
    """Models trained from scratch at sizes near D_crit for ``steps``: their history."""
    sg = config["semigrok"]
    tokens, labels = table(config)
    runs = [
        {"size": d, "seed": config["seed"] + s} for d in sg["sizes"] for s in range(sg["seeds"])
    ]
    indices = [split_indices(len(tokens), r["size"], seed=r["seed"])[0] for r in runs]
    _, history, _ = run_stack(
        config,
        device,
        checkpoint_path,
        "semigrok",
        init_params(model_shape(config), len(runs), seeds=[r["seed"] for r in runs]),
        make_batch(tokens, [labels] * len(runs), indices),
        steps=sg["steps"],
        weight_decay=sg["weight_decay"],
    )
    runs_table = pd.DataFrame(runs).rename_axis("model").reset_index()
    return history.merge(runs_table, on="model")


# ---------------------------------------------------------------- 5. analysis
def first_step(history: pd.DataFrame, column: str, threshold: float) -> float | None:
    """First logged step at which ``column`` >= threshold (and None if never)."""
    hit = history[history[column] >= threshold]
    return float(hit.step.iloc[0]) if len(hit) else None


def delay_factor(history: pd.DataFrame, test_threshold: float) -> float | None:
    """(first step with test acc >= threshold) / (first step with train acc = 1)."""
    t_train = first_step(history, "train_acc", 1.0)
    t_test = first_step(history, "test_acc", test_threshold)
    if t_train is None or t_test is None:
        return None
    return t_test / max(t_train, 1.0)


def critical_size(
    sizes: np.ndarray, accuracy: np.ndarray, level: float = 0.5, bounded: bool = False
) -> float | None:
    """D where the mean test accuracy first crosses ``level``, interpolated in log D.

    sizes (K,) increasing, accuracy (K,) mean final test accuracy at each size. None when
    the curve never crosses (the grid does not bracket the transition); with ``bounded``,
    the end of the grid the transition lies beyond instead (a bound, not a measurement).
    """
    logd = np.log(np.asarray(sizes, dtype=float))
    for i in range(len(sizes) - 1):
        lo, hi = accuracy[i], accuracy[i + 1]
        if lo < level <= hi:
            frac = (level - lo) / (hi - lo)
            return float(np.exp(logd[i] + frac * (logd[i + 1] - logd[i])))
    if not bounded:
        return None
    return float(sizes[0] if min(accuracy) >= level else sizes[-1])


def longest_plateau(history: pd.DataFrame, low: float, high: float) -> float:
    """Longest stretch of steps over which logged test accuracy stays within [low, high]."""
    best, start = 0.0, None
    for step, acc in zip(history.step, history.test_acc, strict=True):
        if low <= acc <= high:
            start = step if start is None else start
            best = max(best, float(step - start))
        else:
            start = None
    return best


def grokking_metrics(history: pd.DataFrame) -> dict:
    return {
        "grok_train_acc_final": float(history.train_acc.iloc[-1]),
        "grok_test_acc_final": float(history.test_acc.iloc[-1]),
        "grok_step_train_acc_1": first_step(history, "train_acc", 1.0),
        "grok_step_test_acc_095": first_step(history, "test_acc", ACC_FOR_GROKKED),
        "grok_delay_factor": delay_factor(history, ACC_FOR_GROKKED),
        "grok_param_norm_final": float(history.param_norm.iloc[-1]),
        "grok_param_norm_max": float(history.param_norm.max()),
    }


def llc_metrics(llcs: pd.DataFrame, history: pd.DataFrame) -> dict:
    """Where the LLC peaks and how it compares at memorisation and after grokking."""
    t_mem = first_step(history, "train_acc", 1.0)
    at_mem = llcs[llcs.step >= (t_mem or math.inf)]
    peak = llcs.loc[llcs.llc_mean.idxmax()]
    return {
        # at the initialisation, before training amplifies rounding: the number that shows a
        # change of the sampler itself where the trained checkpoints' LLCs vary by 2% between
        # CPUs (the drift check of paper.yaml)
        "llc_init": float(llcs.llc_mean.iloc[0]),
        "llc_final": float(llcs.llc_mean.iloc[-1]),
        "llc_max": float(peak.llc_mean),
        "llc_step_of_max": float(peak.step),
        "llc_at_memorisation": float(at_mem.llc_mean.iloc[0]) if len(at_mem) else None,
        "llc_all_finite": bool(
            np.isfinite(llcs.llc_mean).all() and llcs.diverged_chains.eq(0).all()
        ),
        # the health verdict of every LLC estimate above (sltrepro.llc_diagnostics)
        "llc_healthy": bool(llcs.healthy.all()),
        "llc_final_healthy": bool(llcs.healthy.iloc[-1]),
    }


def loglog_slope(frame: pd.DataFrame, column: str) -> tuple[float, float]:
    """Least-squares slope of log ``column`` against log D over every model of ``frame``
    (seeds as replicates) and its standard error."""
    fit = linregress(np.log(frame["size"]), np.log(frame[column]))
    return float(fit.slope), float(fit.stderr)


def efficiency_metrics(mem: pd.DataFrame, gen: pd.DataFrame) -> dict:
    """Both sweeps' fits, the generalising nets' circuit, and their convergence.

    Flatness is a slope: the generalising log-norm slope in units of its own standard error
    (``gen_norm_slope_z``), and, as its null, the memorising slope in the same units.
    """
    mem_norm = mem.groupby("size").param_norm.median()
    mem_slope, mem_se = loglog_slope(mem, "param_norm")
    gen_slope, gen_se = loglog_slope(gen, "param_norm")
    # the paper's measure: the norm at one logit scale, the median margin of all the nets
    scale = float(pd.concat([mem.logit_margin, gen.logit_margin]).median())
    fixed = [f.assign(param_norm=norm_at_logit_scale(f, scale)) for f in (mem, gen)]
    fixed_slopes = [loglog_slope(f, "param_norm")[0] for f in fixed]
    gaps = [abs(fixed_slopes[0] - mem_slope) / mem_se, abs(fixed_slopes[1] - gen_slope) / gen_se]
    return {
        "logit_scale_reference": scale,
        "mem_norm_fixed_scale_slope": fixed_slopes[0],
        "gen_norm_fixed_scale_slope": fixed_slopes[1],
        "crossover_d_fixed_scale": norm_crossover(*fixed),
        # raw norm and the paper's measure tell the same story when their slopes agree
        "fixed_scale_slope_gap_z": float(max(gaps)),
        "mem_train_acc_min": float(mem.train_acc.min()),
        "mem_norm_spearman": float(spearmanr(mem_norm.index, mem_norm.values).statistic),
        "mem_norm_smallest_d": float(mem_norm.iloc[0]),
        "mem_norm_largest_d": float(mem_norm.iloc[-1]),
        "mem_norm_slope": mem_slope,
        "mem_norm_slope_se": mem_se,
        "mem_converged": bool(mem.norm_settled.all()),
        "mem_fourier_key_share_max": float(mem.fourier_key_share.max()),
        "gen_test_acc_min": float(gen.test_acc.min()),
        "gen_norm_median": float(gen.param_norm.median()),
        "gen_norm_slope": gen_slope,
        "gen_norm_slope_se": gen_se,
        "gen_norm_slope_z": gen_slope / gen_se,
        "mem_norm_slope_z_by_gen_se": mem_slope / gen_se,
        "gen_converged": bool(gen.norm_settled.all()),
        "gen_fourier_key_share_min": float(gen.fourier_key_share.min()),
        "gen_fourier_diagonal_share_min": float(gen.fourier_diagonal_share.min()),
    }


def median_line(frame: pd.DataFrame) -> tuple[float, float]:
    """(slope, intercept) of log norm against log D, fitted to the per-D median norms."""
    median = frame.groupby("size").param_norm.median()
    slope, intercept = np.polyfit(np.log(median.index.values), np.log(median.values), 1)
    return float(slope), float(intercept)


def norm_crossover(mem: pd.DataFrame, gen: pd.DataFrame) -> float | None:
    """D where the memorising and generalising log-norm lines (fitted to the per-D medians
    against log D) cross; None when the memorising line does not rise faster."""
    (mem_slope, mem_icpt), (gen_slope, gen_icpt) = median_line(mem), median_line(gen)
    if mem_slope <= gen_slope:
        return None
    return float(np.exp((gen_icpt - mem_icpt) / (mem_slope - gen_slope)))


def resample_seeds(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A bootstrap copy of ``frame``: at every size, its models drawn with replacement."""
    groups = frame.groupby("size").indices.values()
    return frame.iloc[np.concatenate([rng.choice(rows, len(rows)) for rows in groups])]


def mean_critical_size(
    finals: pd.DataFrame, column: str = "test_acc", bounded: bool = False
) -> float | None:
    curve = finals.groupby("size")[column].mean()
    return critical_size(curve.index.values, curve.values, bounded=bounded)


def log_se(statistic, frames: tuple, rng: np.random.Generator) -> float | None:
    """Bootstrap (over seeds) standard error of log statistic(*frames); None when most
    resamples give no value."""
    values = [statistic(*(resample_seeds(f, rng) for f in frames)) for _ in range(BOOTSTRAP)]
    finite = np.log([v for v in values if v is not None])
    return float(finite.std(ddof=1)) if len(finite) > BOOTSTRAP / 2 else None


def crossover_metrics(
    mem: pd.DataFrame, gen: pd.DataFrame, finals_wd1: pd.DataFrame, rng: np.random.Generator
) -> dict:
    """The prediction: the norm crossover against the ungrokking D_crit (weight decay 1),
    as a log ratio in units of its standard error (both bootstrapped over seeds). The null:
    a D_crit that ignores efficiency, the largest D a memorising net fits (a lower bound
    when every memorisation size was fitted)."""
    crossing, dcrit = norm_crossover(mem, gen), mean_critical_size(finals_wd1)
    out = {"crossover_d": crossing, "crossover_dcrit_ratio": None}
    out["crossover_d_log_se"] = se_x = log_se(norm_crossover, (mem, gen), rng)
    out["ungrok_dcrit_log_se"] = se_c = log_se(mean_critical_size, (finals_wd1,), rng)
    fitted = mem.groupby("size").train_acc.median() >= 0.99
    limit = float(fitted.index[~fitted.values].min() if (~fitted).any() else fitted.index.max())
    out["mem_fit_limit_d"] = limit
    if None in (crossing, dcrit, se_x, se_c):
        return {**out, "crossover_dcrit_z": None, "mem_fit_limit_dcrit_z": None}
    se = math.hypot(se_x, se_c)
    out["crossover_dcrit_ratio"] = crossing / dcrit
    out["crossover_dcrit_z"] = math.log(crossing / dcrit) / se
    out["mem_fit_limit_dcrit_z"] = math.log(limit / dcrit) / se
    return out


def seed_critical_sizes(finals: pd.DataFrame, column: str, bounded: bool) -> pd.DataFrame:
    """One D_crit per (weight decay, seed), from each seed's own curve of ``column``."""
    rows = [
        {"weight_decay": wd, "seed": seed, "dcrit": mean_critical_size(run, column, bounded)}
        for (wd, seed), run in finals.groupby(["weight_decay", "seed"])
    ]
    return pd.DataFrame(rows)


def wd_slope(
    finals: pd.DataFrame, column: str, bounded: bool = False
) -> tuple[float | None, float | None]:
    """Slope of log D_crit against log weight decay over every seed, and its SE; None when
    a seed's curve does not cross (with ``bounded``: that D_crit at the grid's end)."""
    crits = seed_critical_sizes(finals, column, bounded)
    if crits.dcrit.isna().any() or crits.weight_decay.nunique() < 2:
        return None, None
    fit = linregress(np.log(crits.weight_decay), np.log(crits.dcrit.astype(float)))
    return float(fit.slope), float(fit.stderr)


def ungrok_metrics(finals: pd.DataFrame, sizes: list[int]) -> dict:
    """Per weight decay: D_crit and test accuracy at the ends of the grid; across them, the
    slope of log D_crit against log wd in units of its SE, and, as its null, the slope of
    D_crit read at the same step count for every wd (a pure budget effect: a lower wd has
    decayed less after the same steps)."""
    out = {}
    for wd, group in finals.groupby("weight_decay"):
        out[f"ungrok_dcrit_wd{wd:g}"] = mean_critical_size(group)
    out["ungrok_dcrit"] = out.get("ungrok_dcrit_wd1")  # the paper's range is for wd 1
    slope, se = wd_slope(finals, "test_acc")
    # an equal-steps curve that never crosses has its D_crit beyond the grid: clipped to the
    # grid's end, it moves towards the other runs' D_crit, understating a budget effect
    budget, _ = wd_slope(finals, "test_acc_equal_steps", bounded=True)
    out["ungrok_dcrit_wd_slope"] = slope
    out["ungrok_dcrit_wd_slope_se"] = se
    out["ungrok_dcrit_wd_slope_z"] = None if slope is None else slope / se
    out["ungrok_dcrit_wd_slope_equal_steps"] = budget
    out["ungrok_dcrit_wd_slope_equal_steps_z"] = (
        None if budget is None or se is None else budget / se
    )
    out["ungrok_converged"] = bool(finals.test_acc_settled.all())
    per_size = finals.groupby(["weight_decay", "size"]).test_acc.mean().groupby(level=1)
    out["ungrok_train_acc_min"] = float(finals.train_acc.min())
    out["ungrok_test_acc_smallest_max"] = float(per_size.max().loc[min(sizes)])
    out["ungrok_test_acc_largest_min"] = float(per_size.min().loc[max(sizes)])
    return out


def summarize(
    config: dict,
    history: pd.DataFrame,
    llcs: pd.DataFrame,
    memorise: pd.DataFrame,
    generalise: pd.DataFrame,
    pretrained: pd.DataFrame,
    ungrok_finals: pd.DataFrame,
    semi: pd.DataFrame,
) -> dict:
    """The flat metrics the claims read, from every step's tables."""
    metrics = grokking_metrics(history)
    metrics.update(llc_metrics(llcs, history))
    metrics.update(efficiency_metrics(memorise, generalise))
    last = pretrained[pretrained.step == pretrained.step.max()]
    metrics["pretrain_test_acc_min"] = float(last.test_acc.min())
    metrics.update(ungrok_metrics(ungrok_finals, config["ungrok"]["sizes"]))
    metrics.update(
        crossover_metrics(
            memorise,
            generalise,
            ungrok_finals[ungrok_finals.weight_decay == 1.0],
            np.random.default_rng(config["seed"]),
        )
    )
    metrics["semigrok_plateau_steps"] = max(
        longest_plateau(run, 0.2, 0.9) for _, run in semi.groupby("model")
    )
    metrics["semigrok_test_acc_final_max"] = float(
        semi[semi.step == semi.step.max()].test_acc.max()
    )
    return metrics
