"""Varma et al. 2023, "Explaining grokking through circuit efficiency", as pipeline steps.

Method (their Sec. 3-5, App. A), on a+b mod p with the one-layer transformer:

1. ``grok``: train on a fraction of all pairs with weight decay; log train/test loss and
   accuracy and the parameter norm at log-spaced steps, keep log-spaced snapshots.
   ``llc``: the local learning coefficient of each snapshot (our addition to the paper).
2. ``efficiency``: memorisation-only nets (random labels, D from small to large) and
   generalisation-only nets (true labels, large D); parameter norm at the end vs D.
3. ``pretrain`` + ``ungrok``: grok on a large set, then keep training on random subsets of
   size D' at several weight decays; final test accuracy vs D' and the critical size D_crit.
4. ``semigrok``: train from scratch at D near D_crit for long and look for a plateau of
   middling test accuracy.
5. ``analyze``: the numbers the claims check, in ``metrics.json``.

Every training step trains all the models of its sweep as one vectorised stack.
"""

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from sltrepro.llc import SamplerSettings, estimate_llc_trajectory
from sltrepro.models.modular_transformer import (
    ModularTransformer,
    TransformerShape,
    init_params,
    select,
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


def llc(config: dict, saved: dict, device, log) -> pd.DataFrame:
    """LLC (shared SGLD estimator) of every grokking snapshot on its training set."""
    s = config["llc"]
    tokens, labels = table(config)
    idx = saved["train_indices"]
    data = (tokens[idx], labels[idx])
    steps = sorted(saved["snapshots"])
    # every snapshot in one run: the same numbers as one estimate_llc call each
    results = estimate_llc_trajectory(
        None,
        [ModularTransformer(saved["snapshots"][step]) for step in steps],
        F.cross_entropy,
        data,
        SamplerSettings.from_config(s),
        seed=config["seed"],
        device=device,
        verbose=False,
    )
    rows = []
    for step, result in zip(steps, results, strict=True):
        rows.append({"step": step, **result.summary_row()})
        log.info("LLC at step %d: %.2f +- %.2f", step, result.llc_mean, result.llc_std)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- 2. circuit efficiency
def efficiency(
    config: dict, kind: str, checkpoint_path, device
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``kind="memorise"``: random labels; ``"generalise"``: true labels. (history, final).

    One model per (D, seed); parameter norm, train and test accuracy after ``steps``.
    """
    e = config["efficiency"]
    if kind not in ("memorise", "generalise"):
        raise ValueError(f"--opt kind must be memorise or generalise, got {kind!r}")
    tokens, true_labels = table(config)
    runs = [
        {"kind": kind, "size": d, "seed": config["seed"] + s}
        for d in e[f"{kind}_sizes"]
        for s in range(e["seeds"])
    ]
    label_tables = [
        random_labels(config["p"], seed=1000 + r["seed"]) if kind == "memorise" else true_labels
        for r in runs
    ]
    indices = [split_indices(len(tokens), r["size"], seed=r["seed"])[0] for r in runs]
    _, history, _ = run_stack(
        config,
        device,
        checkpoint_path,
        kind,
        init_params(model_shape(config), len(runs), seeds=[r["seed"] for r in runs]),
        make_batch(tokens, label_tables, indices),
        steps=e["steps"],
        weight_decay=e["weight_decay"],
    )
    return history, final_rows(history, runs)


# ---------------------------------------------------------------- 3. ungrokking
def pretrain(config: dict, checkpoint_path, device) -> tuple[pd.DataFrame, dict]:
    """One grokked model per ungrokking seed, trained on ``pretrain_size`` pairs: the history
    and the record (``params``, ``indices``, ``seeds``) the ungrokking runs start from."""
    u = config["ungrok"]
    tokens, labels = table(config)
    seeds = [config["seed"] + s for s in range(u["seeds"])]
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


def ungrok(
    config: dict, wd: float, saved: dict, checkpoint_path, device
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weight decay ``wd``: continue every pretrained model (``saved``, from ``pretrain``) on
    subsets of size D'. (history, final).

    Model (seed s, D') starts from pretrained model s and trains on a random D'-subset of
    its pretraining set; test accuracy is measured on all other pairs.
    """
    u = config["ungrok"]
    tokens, labels = table(config)
    runs = [
        {"weight_decay": wd, "size": d, "seed": seed, "pretrained": i}
        for d in u["sizes"]
        for i, seed in enumerate(saved["seeds"])
    ]
    indices = [
        subset_indices(saved["indices"][r["pretrained"]], r["size"], seed=r["seed"]) for r in runs
    ]
    start = {k: v[[r["pretrained"] for r in runs]] for k, v in saved["params"].items()}
    _, history, _ = run_stack(
        config,
        device,
        checkpoint_path,
        "ungrok",
        start,
        make_batch(tokens, [labels] * len(runs), indices),
        steps=u["steps"],
        weight_decay=wd,
    )
    return history, final_rows(history, runs)


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


def critical_size(sizes: np.ndarray, accuracy: np.ndarray, level: float = 0.5) -> float | None:
    """D where the mean test accuracy first crosses ``level``, interpolated in log D.

    sizes (K,) increasing, accuracy (K,) mean final test accuracy at each size. None when
    the curve never crosses (the grid does not bracket the transition).
    """
    logd = np.log(np.asarray(sizes, dtype=float))
    for i in range(len(sizes) - 1):
        lo, hi = accuracy[i], accuracy[i + 1]
        if lo < level <= hi:
            frac = (level - lo) / (hi - lo)
            return float(np.exp(logd[i] + frac * (logd[i + 1] - logd[i])))
    return None


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


def efficiency_metrics(mem: pd.DataFrame, gen: pd.DataFrame) -> dict:
    mem_norm = mem.groupby("size").param_norm.mean()
    gen_norm = gen.groupby("size").param_norm.mean()
    return {
        "mem_train_acc_min": float(mem.train_acc.min()),
        "mem_norm_spearman": float(spearmanr(mem_norm.index, mem_norm.values).statistic),
        "mem_norm_smallest_d": float(mem_norm.iloc[0]),
        "mem_norm_largest_d": float(mem_norm.iloc[-1]),
        "gen_test_acc_min": float(gen.test_acc.min()),
        "gen_norm_mean": float(gen_norm.mean()),
        "gen_norm_rel_spread": float((gen_norm.max() - gen_norm.min()) / gen_norm.mean()),
        # the same spread for memorising nets: the null the flat-norm claim must beat
        "mem_norm_rel_spread": float((mem_norm.max() - mem_norm.min()) / mem_norm.mean()),
    }


def ungrok_metrics(finals: pd.DataFrame, sizes: list[int]) -> dict:
    """Per weight decay: D_crit, test accuracy at the ends of the grid; and across them."""
    out, crits = {}, {}
    mean_acc = finals.groupby(["weight_decay", "size"]).test_acc.mean()
    for wd, curve in mean_acc.groupby(level=0):
        curve = curve.droplevel(0)
        crits[wd] = critical_size(curve.index.values, curve.values)
        out[f"ungrok_dcrit_wd{wd:g}"] = crits[wd]
    ratio = float(np.exp(np.mean(np.diff(np.log(sizes)))))  # the grid's geometric step
    out["ungrok_grid_ratio"] = ratio
    out["ungrok_dcrit"] = crits.get(1.0)  # the paper's D_crit range is for weight decay 1
    crits = list(crits.values())
    out["ungrok_dcrit_wd_spread_grid_steps"] = (
        None
        if any(c is None for c in crits)
        else float(np.log(max(crits) / min(crits)) / np.log(ratio))
    )
    per_size = mean_acc.groupby(level=1)
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
    metrics["semigrok_plateau_steps"] = max(
        longest_plateau(run, 0.2, 0.9) for _, run in semi.groupby("model")
    )
    metrics["semigrok_test_acc_final_max"] = float(
        semi[semi.step == semi.step.max()].test_acc.max()
    )
    return metrics
