"""icl_landscape, language-model half: the weight-refined LLC of every attention head over
training (Wang, Hoogland, van Wingerden, Furman and Murfet 2024, "Differentiation and
Specialization of Attention Heads via the Refined Local Learning Coefficient", arXiv
2410.02984).

Method, as in that paper:

1. Per head and checkpoint (``lm_head_llc``, one job per block of heads): the LLC of the
   same training loss as the whole-model LLC, with SGLD restricted to the head's own
   weights (its rows of the query, key and value matrices and its columns of the output
   matrix, :func:`sltrepro.models.attn_lm.head_mask`); every other weight stays at w*. One
   estimate per checkpoint: batching the checkpoints into one
   :func:`sltrepro.llc.estimate_llc_trajectory` run was 1.5x slower here (a chain's
   activations, 8 x 128 tokens x 512 logits, already fill the cache). Every head reads the
   same minibatches (one seed), so differences between heads are not minibatch noise.
2. Head types (``lm_heads``) from the behavioural scores of the last checkpoint: induction
   heads are the last layer's heads whose prefix-matching score reaches
   ``head_scores.formed_at``; previous-token heads, layer 0's heads whose previous-token
   score does.
3. Their claims (Fig. 1): at the end of training induction heads, simple algorithms, have
   a lower wrLLC than the heads of their layer that memorise multigrams, and the heads of a
   layer differentiate (their wrLLCs come apart, where at initialisation the heads are
   exchangeable).

The functions take the ``language:`` config block, token arrays, tables and folders of
checkpoints, and return tables, arrays and dicts; ``__init__.py`` reads and writes the files.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch
from scipy import stats as scipy_stats

from sltrepro.health import health_metrics
from sltrepro.models.attn_lm import head_mask
from sltrepro.train.lm import next_token_loss, snapshot_path

from .lm_pipeline import build_model, checkpoint_steps, llc_data, split_tokens, standard_error


def head_llc_steps(cfg: dict) -> list[int]:
    """The checkpoints whose heads are estimated: every ``head_llc.checkpoint_every``-th of
    the schedule, from step 0, and always the last one."""
    steps = checkpoint_steps(cfg)
    picked = steps[:: cfg["head_llc"]["checkpoint_every"]]
    return picked if picked[-1] == steps[-1] else [*picked, steps[-1]]


def all_heads(cfg: dict) -> list[tuple[int, int]]:
    """(layer, head) of every attention head, layer by layer."""
    return [(layer, head) for layer in range(cfg["n_layers"]) for head in range(cfg["n_heads"])]


def head_blocks(cfg: dict) -> list[list[tuple[int, int]]]:
    """The heads dealt into ``head_llc.blocks`` blocks (one job each, about equal cost)."""
    heads, blocks = all_heads(cfg), cfg["head_llc"]["blocks"]
    return [heads[i::blocks] for i in range(blocks)]


def estimate_block(
    cfg: dict, seed: int, block: int, tokens: np.ndarray, vocab: int, snapshots, device, log
) -> tuple[pd.DataFrame, np.ndarray]:
    """wrLLC of every head of ``block`` at every checkpoint of :func:`head_llc_steps`, on
    the LLC's training windows -> (one row per head and checkpoint: step, layer, head, wrllc
    and the estimate's ``summary_row(prefix="llc_")``; (H_block, K, C, draws) traces
    nbeta * (L(w) - L(w*)))."""
    data = llc_data(cfg, split_tokens(tokens, cfg["val_fraction"])[0], seed)
    steps = head_llc_steps(cfg)
    return _estimate(cfg, seed, head_blocks(cfg)[block], steps, data, vocab, snapshots, device, log)


def estimate_plain_text(
    cfg: dict, seed: int, tokens: np.ndarray, vocab: int, snapshots, device, log
) -> tuple[pd.DataFrame, np.ndarray]:
    """The data-refined side: every head's wrLLC at the last checkpoint on the same training
    windows without their repeated spans (natural text only); rows and traces as
    :func:`estimate_block` (K = 1). Without ``repeat_spans`` the windows are the same."""
    data = llc_data(cfg, split_tokens(tokens, cfg["val_fraction"])[0], seed, spans=False)
    last = head_llc_steps(cfg)[-1:]
    return _estimate(cfg, seed, all_heads(cfg), last, data, vocab, snapshots, device, log)


def _estimate(cfg, seed, heads, steps, data, vocab, snapshots, device, log):
    from sltrepro.llc import SamplerSettings, estimate_llc

    model = build_model(cfg, vocab)
    settings = SamplerSettings.from_config(cfg["head_llc"])
    rows, traces = [], []
    for layer, head in heads:
        mask = head_mask(model, layer, head)
        results = []
        for step in steps:
            model.load_state_dict(torch.load(snapshot_path(snapshots, step), map_location="cpu"))
            result = estimate_llc(
                model,
                next_token_loss,
                data,
                settings,
                seed=seed,
                device=device,
                restrict=mask,
                verbose=False,
            )
            row = {"step": step, "layer": layer, "head": head, "wrllc": result.llc_mean}
            rows.append({**row, **result.summary_row(prefix="llc_")})
            results.append(result)
        traces.append(np.stack([r.llc_trace for r in results]).astype(np.float32))
        log.info(
            "head l%dh%d: wrLLC %s (%d of %d healthy, %.0f s)",
            layer,
            head,
            " ".join(f"{r.llc_mean:.2f}" for r in results),
            sum(r.healthy for r in results),
            len(results),
            sum(r.seconds for r in results),
        )
    return pd.DataFrame(rows), np.stack(traces)


def head_types(checkpoints: pd.DataFrame, cfg: dict) -> dict[tuple[int, int], str]:
    """{(layer, head): "induction" | "previous-token" | "other"} from the last checkpoint's
    scores (``checkpoints``: the LM analysis table, one row per checkpoint): every head of
    the last layer whose prefix-matching score, and every head of layer 0 whose
    previous-token score, reaches ``head_scores.formed_at``."""
    last, level = checkpoints.sort_values("step").iloc[-1], cfg["head_scores"]["formed_at"]
    types = dict.fromkeys(all_heads(cfg), "other")
    for layer, kind, name in (
        (cfg["n_layers"] - 1, "induction", "induction"),
        (0, "prev", "previous-token"),
    ):
        for head in range(cfg["n_heads"]):
            if last[f"{kind}_l{layer}h{head}"] >= level:
                types[(layer, head)] = name
    return types


def heterogeneity_p(values: np.ndarray, errors: np.ndarray) -> float:
    """P-value of Cochran's Q: are these estimates (with these standard errors) one value?
    Q = sum((x - x_w)^2 / se^2) with x_w the inverse-variance mean is chi^2(n - 1) when they
    are (NaN when an estimate or its error is missing)."""
    if not (np.isfinite(values).all() and np.isfinite(errors).all() and (errors > 0).all()):
        return float("nan")
    weights = 1 / errors**2
    centre = (weights * values).sum() / weights.sum()
    q = float((weights * (values - centre) ** 2).sum())
    return float(scipy_stats.chi2.sf(q, len(values) - 1))


def induction_gap(final: pd.DataFrame, induction: list[int]) -> dict:
    """The induction heads' mean final wrLLC against the mean of the other heads of their
    layer (``final``: that layer's rows at the last checkpoint): the gap, its z (gap over
    its standard error) and the shuffled-label p, the fraction of all ways to pick as many
    heads of the layer whose gap is at most this one (1 / C(heads, k) when it is the lowest).
    """
    values = final.set_index("head")["wrllc"]
    errors = final.set_index("head")["wrllc_se"]

    def gap(picked) -> float:
        return float(values[list(picked)].mean() - values.drop(list(picked)).mean())

    others = errors.drop(induction)
    se = float(
        np.sqrt(
            (errors[induction] ** 2).sum() / len(induction) ** 2
            + (others**2).sum() / len(others) ** 2
        )
    )
    observed = gap(induction)
    shuffled = np.array([gap(c) for c in itertools.combinations(values.index, len(induction))])
    return {
        "lm_wrllc_induction_final": float(values[induction].mean()),
        "lm_wrllc_other_heads_final_mean": float(values.drop(induction).mean()),
        "lm_wrllc_induction_gap": observed,
        "lm_wrllc_induction_gap_z": observed / se if se > 0 else None,
        "lm_wrllc_induction_gap_shuffled_p": float((shuffled <= observed + 1e-12).mean()),
    }


def data_refined(final: pd.DataFrame, plain: pd.DataFrame) -> pd.DataFrame:
    """Per head at the last checkpoint: the wrLLC on the training windows (repeated spans
    in) and on the same windows as plain text, their standard errors and the ratio
    spans / plain (``final``: every head's last row of the curve table, with its type)."""
    keys = ["layer", "head"]

    def side(rows: pd.DataFrame, name: str) -> pd.DataFrame:
        values = {f"wrllc_{name}": rows["wrllc"], f"se_{name}": standard_error(rows)}
        return rows[keys].assign(**values)

    both = final[[*keys, "type"]].merge(side(final, "spans"), on=keys)
    both = both.merge(side(plain, "plain"), on=keys)
    both["spans_over_plain"] = both["wrllc_spans"] / both["wrllc_plain"]
    return both


def summarize(
    table: pd.DataFrame, plain: pd.DataFrame, checkpoints: pd.DataFrame, cfg: dict
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The metrics (``lm_wrllc_*`` and ``lm_head_llc_*`` of the curves, the data-refined
    ``lm_drllc_*`` and ``lm_head_plain_llc_*``), the curve table with each head's type, and
    the data-refined table (:func:`data_refined`), from the estimate blocks (``table``,
    concatenated), the plain-text estimates at the last checkpoint (``plain``) and the LM
    analysis table (``checkpoints``)."""
    types = head_types(checkpoints, cfg)
    table = table.sort_values(["layer", "head", "step"], kind="stable").reset_index(drop=True)
    table.insert(3, "type", [types[key] for key in zip(table["layer"], table["head"], strict=True)])
    table.insert(5, "wrllc_se", standard_error(table))
    last_layer = cfg["n_layers"] - 1
    steps = sorted(table["step"].unique())
    layer = table[table["layer"] == last_layer]
    first, final = layer[layer["step"] == steps[0]], layer[layer["step"] == steps[-1]]
    induction = [h for (lay, h), kind in types.items() if kind == "induction"]
    metrics = {
        "lm_wrllc_induction_heads": " ".join(f"l{last_layer}h{h}" for h in induction) or None,
        "lm_wrllc_induction_final": None,
        "lm_wrllc_other_heads_final_mean": None,
        "lm_wrllc_induction_gap": None,
        "lm_wrllc_induction_gap_z": None,
        "lm_wrllc_induction_gap_shuffled_p": None,
    }
    if 0 < len(induction) < cfg["n_heads"]:  # a gap needs heads on both sides
        metrics.update(induction_gap(final, induction))
    metrics["lm_wrllc_last_layer_heterogeneity_p_final"] = heterogeneity_p(
        final["wrllc"].to_numpy(), final["wrllc_se"].to_numpy()
    )
    metrics["lm_wrllc_last_layer_heterogeneity_p_first"] = heterogeneity_p(
        first["wrllc"].to_numpy(), first["wrllc_se"].to_numpy()
    )
    # every estimate (lm_head_llc_*) and the claims' gate: those they read, the last
    # layer's heads at the last step (lm_head_claims_llc_*)
    metrics.update(health_metrics(table, "lm_head_", _labels(table), row_prefix="llc_"))
    metrics.update(health_metrics(final, "lm_head_claims_", _labels(final), row_prefix="llc_"))
    refined = data_refined(table[table["step"] == steps[-1]], plain)
    last = refined[refined["layer"] == last_layer]
    for name, picked in (
        ("induction", last["type"] == "induction"),
        ("other", last["type"] != "induction"),
    ):
        ratios = last.loc[picked, "spans_over_plain"]
        metrics[f"lm_drllc_spans_over_plain_{name}"] = float(ratios.mean()) if len(ratios) else None
    metrics.update(health_metrics(plain, "lm_head_plain_", _labels(plain), row_prefix="llc_"))
    return metrics, table, refined


def _labels(table: pd.DataFrame) -> list[str]:
    return [
        f"l{lay}h{h} step {s}"
        for lay, h, s in table[["layer", "head", "step"]].itertuples(index=False)
    ]
