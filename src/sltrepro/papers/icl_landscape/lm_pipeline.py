"""icl_landscape, language-model half (Hoogland et al. 2024, Sec. 4 and App. on the LM).

Method, as in the paper:

1. Data: a text corpus (offline standard-library text for smoke/cpu; the paper's Pile subset
   through Hugging Face ``datasets`` for ``paper``), a byte-level BPE tokenizer trained on it,
   the token stream split once into train and validation parts (``lm_train``). A deviation
   for cpu: ``repeat_spans`` copies a random span of some training windows later into the
   same window (:class:`sltrepro.tasks.corpus.RepeatSpans`), so that induction heads form
   within a cpu run; evaluation text stays natural.
2. Model: a two-layer attention-only transformer trained with AdamW at a constant learning
   rate; weights saved on a log + linear checkpoint schedule (``lm_train``).
3. Per checkpoint (``lm_evaluate``, one job per block of checkpoints): validation loss by
   token position; the ICL score (loss at a late token minus loss at an early token); the
   bigram score (cross-entropy of the model's prediction against the corpus's empirical
   bigram distribution of the previous token); the n-gram score (loss on the tokens that
   complete the corpus's most frequent n-grams); previous-token and induction
   (prefix-matching) scores of every head; the LLC of the training loss (shared SGLD
   estimator); the model's log-probabilities on a fixed input set (essential dynamics).
4. Stages (``lm_analyze``): the shared GP stage detection on LLC vs log step, the shared
   essential-dynamics PCA, and the metrics the claims read.
5. Seeds (``lm_seeds``): steps 2-4 run for every seed of ``seeds``; the first is the
   reference (its metrics, figures and the per-head LLCs), and the claims on stages read
   what every seed shows (:func:`across_seeds`). The paper reports one LM run.

The functions here never see the step context: they take the ``language:`` config block,
token arrays, tables and folders of checkpoints, and return tables, arrays and dicts;
``__init__.py`` reads and writes the files (their paths are in workflows/icl_landscape_lm.smk).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from sltrepro import stages
from sltrepro.health import health_metrics
from sltrepro.models.attn_lm import AttnOnlyLM, induction_scores, previous_token_scores
from sltrepro.seeds import all_seeds_flags, joined_reasons, spread, stage_order
from sltrepro.tasks import corpus
from sltrepro.train.icl import checkpoint_steps as log_linear_steps
from sltrepro.train.lm import LMTrainConfig, next_token_loss, snapshot_path, train_lm

EVAL_CHUNK = 32  # sequences per forward pass in evaluation (bounds memory at large vocab)


# -- configuration helpers -------------------------------------------------------------------
def checkpoint_steps(cfg: dict) -> list[int]:
    """The checkpoint schedule of the profile (step 0 is the initialisation): log-spaced
    plus linearly spaced steps, as for the regression half."""
    return log_linear_steps(cfg["steps"], cfg["num_log_checkpoints"], cfg["num_linear_checkpoints"])


def checkpoint_blocks(cfg: dict) -> list[list[int]]:
    """The schedule dealt into ``llc.blocks`` blocks (one evaluation job each): every
    ``blocks``-th checkpoint, so the jobs cost about the same."""
    steps, blocks = checkpoint_steps(cfg), cfg["llc"]["blocks"]
    return [steps[i::blocks] for i in range(blocks)]


def build_model(cfg: dict, vocab_size: int) -> AttnOnlyLM:
    return AttnOnlyLM(
        vocab_size,
        d_model=cfg["d_model"],
        n_heads=cfg["n_heads"],
        d_head=cfg["d_head"],
        context=cfg["context"],
        n_layers=cfg["n_layers"],
    )


# -- step 1-2: data and training -------------------------------------------------------------
@dataclass
class Corpus:
    """The training data of the LM: the token stream, its tokenizer and a fingerprint."""

    tokens: np.ndarray
    """(N,) int32 token ids of the whole corpus"""
    tokenizer_json: str
    info: dict
    """source, fingerprint of the text, num_tokens, vocab_size, chars_per_token"""


def prepare_data(cfg: dict, log) -> Corpus:
    """Corpus -> tokenizer -> token stream."""
    text = corpus.build_corpus(
        cfg["corpus"], num_chars=cfg["corpus_chars"], text_field=cfg["text_field"]
    )
    tokenizer = corpus.ByteBPE.train(text[: cfg["tokenizer_chars"]], cfg["vocab_size"])
    tokens = np.asarray(tokenizer.encode(text), dtype=np.int32)
    info = {
        "source": cfg["corpus"],
        **corpus.corpus_fingerprint(text),
        "num_tokens": len(tokens),
        "vocab_size": tokenizer.vocab_size,
        "chars_per_token": len(text) / len(tokens),
    }
    log.info("corpus: %s", info)
    return Corpus(tokens, tokenizer.to_json(), info)


def split_tokens(tokens: np.ndarray, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) 1-D int64 token tensors of the token stream."""
    train, val = corpus.split_tokens(tokens.astype(np.int64), val_fraction)
    return torch.from_numpy(train), torch.from_numpy(val)


def train(
    cfg: dict, seed: int, tokens: np.ndarray, vocab_size: int, workdir: Path, device, log
) -> pd.DataFrame:
    """Train the LM on the training part of ``tokens`` -> history (step, loss).

    The weights of every checkpoint go to ``snapshot_path(workdir / "checkpoints", step)``;
    the resumable state to ``workdir/state.pt``.
    """
    train_tokens, _ = split_tokens(tokens, cfg["val_fraction"])
    torch.manual_seed(seed)
    model = build_model(cfg, vocab_size).to(device)
    log.info("attention-only LM with %d parameters", model.num_params())
    train_cfg = LMTrainConfig(
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        context=cfg["context"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        seed=seed,
        snapshot_steps=checkpoint_steps(cfg),
        repeat_spans=corpus.RepeatSpans.from_config(cfg.get("repeat_spans")),
    )
    return train_lm(model, train_tokens, train_cfg, workdir, log)


# -- step 3: per-checkpoint metrics ----------------------------------------------------------
@dataclass
class EvalData:
    """Fixed inputs shared by every checkpoint (so differences between checkpoints are not
    sampling noise)."""

    windows: torch.Tensor
    """(N, context + 1) validation windows: inputs [:, :-1], targets [:, 1:]."""
    bigram: torch.Tensor
    """(V, V) empirical P(next | previous) on the training stream."""
    ngram_mask: torch.Tensor
    """(N, context) True where the target completes one of the top n-grams."""
    llc_data: tuple[torch.Tensor, torch.Tensor]
    """(inputs, targets), each (M, context): training windows the LLC is estimated on."""
    seen_tokens: torch.Tensor
    """(K,) the distinct token ids of the training stream (the prefix-matching draws)."""


def make_eval_data(cfg: dict, tokens: np.ndarray, vocab: int, seed: int) -> EvalData:
    """The behavioural scores read natural validation text (the paper's measurements; a
    repeated span would make the bigram and n-gram scores measure copying); the LLC reads
    training windows drawn like the training batches, repeated spans included (the LLC is
    that of the training loss), with spans from a generator seeded by ``seed``."""
    train, val = split_tokens(tokens, cfg["val_fraction"])
    ctx_len = cfg["context"]
    windows = corpus.fixed_windows(val, cfg["eval_sequences"], ctx_len + 1)
    bigram = torch.from_numpy(corpus.bigram_table(train.numpy(), vocab)).float()
    n, top = cfg["ngram"]["n"], cfg["ngram"]["top"]
    grams = corpus.top_ngrams(train.numpy(), n, top, vocab)
    return EvalData(
        windows=windows,
        bigram=bigram,
        ngram_mask=ngram_mask(windows, grams, vocab),
        llc_data=llc_data(cfg, train, seed),
        seen_tokens=torch.unique(train),
    )


def llc_data(
    cfg: dict, train: torch.Tensor, seed: int, *, spans: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (``llc.sequences``, context): the fixed training windows every
    LLC of the LM reads (the whole model's and each head's), repeated spans included; with
    ``spans=False`` the same windows as plain text (the data-refined LLC's other subset)."""
    windows = corpus.fixed_windows(train, cfg["llc"]["sequences"], cfg["context"] + 1)
    repeat = corpus.RepeatSpans.from_config(cfg.get("repeat_spans")) if spans else None
    if repeat is not None:
        windows = repeat.apply(windows, torch.Generator().manual_seed(seed))
    return windows[:, :-1], windows[:, 1:]


def ngram_mask(windows: torch.Tensor, grams: np.ndarray, vocab: int) -> torch.Tensor:
    """(N, T) True at target position j when tokens j+2-n .. j+1 of a window form a listed
    n-gram (the target token, windows[:, j+1], completes it). windows: (N, T + 1)."""
    n = grams.shape[1]
    base = vocab ** np.arange(n - 1, -1, -1, dtype=np.int64)
    seq = windows.numpy().astype(np.int64)
    codes = np.lib.stride_tricks.sliding_window_view(seq, n, axis=1) @ base  # (N, T + 2 - n)
    mask = np.zeros((seq.shape[0], seq.shape[1] - 1), dtype=bool)
    mask[:, n - 2 :] = np.isin(codes, grams @ base)
    return torch.from_numpy(mask)


@torch.no_grad()
def behaviour(model: AttnOnlyLM, data: EvalData) -> dict:
    """Loss by position (T,), bigram score and n-gram score (nats) on the validation windows."""
    loss_sum = torch.zeros(data.windows.shape[1] - 1, dtype=torch.float64)
    bigram_sum, ngram_sum = 0.0, 0.0
    for chunk, mask in zip(
        data.windows.split(EVAL_CHUNK), data.ngram_mask.split(EVAL_CHUNK), strict=True
    ):
        inputs, targets = chunk[:, :-1], chunk[:, 1:]
        logp = F.log_softmax(model(inputs), dim=-1)  # (B, T, V)
        token_loss = -logp.gather(-1, targets[..., None])[..., 0]  # (B, T)
        loss_sum += token_loss.sum(0).double()
        bigram_sum += float(-(data.bigram[inputs] * logp).sum())
        ngram_sum += float(token_loss[mask].sum())
    n = data.windows.shape[0]
    return {
        "loss_by_position": (loss_sum / n).numpy(),
        "bigram_score": bigram_sum / (n * (data.windows.shape[1] - 1)),
        "ngram_score": ngram_sum / max(int(data.ngram_mask.sum()), 1),
    }


def icl_score(loss_by_position: np.ndarray, early: int, late: int, width: int) -> float:
    """Mean loss over tokens late±width minus over early±width (nats; negative = ICL)."""

    def around(t: int) -> float:
        return float(loss_by_position[max(t - width, 0) : t + width + 1].mean())

    return around(late) - around(early)


def head_scores(model: AttnOnlyLM, data: EvalData, cfg: dict, seed: int) -> dict:
    """Previous-token scores on validation text and induction scores on repeated random
    tokens (drawn from those of the training stream: a byte-level BPE keeps ids of bytes
    the corpus never has), for every head: {"prev_l0h3": ..., "induction_l1h2": ...}."""
    heads = cfg["head_scores"]
    prev = previous_token_scores(model, data.windows[: heads["sequences"], :-1])
    gen = torch.Generator().manual_seed(seed)
    vocab = model.embed.num_embeddings
    half, num = cfg["context"] // 2, heads["sequences"]
    ind = induction_scores(model, vocab, half, num, gen, tokens=data.seen_tokens)
    out = {}
    for name, scores in (("prev", prev), ("induction", ind)):
        for (layer, head), value in np.ndenumerate(scores.numpy()):
            out[f"{name}_l{layer}h{head}"] = float(value)
    return out


def checkpoint_llc(
    model: AttnOnlyLM, data: EvalData, cfg: dict, seed: int, device
) -> tuple[dict, np.ndarray]:
    """LLC of the mean next-token loss on the LLC training windows (shared estimator) ->
    (its summary, the (C, D) chains' trace nbeta * (L(w) - L(w*))).

    One estimate per checkpoint, not a stacked trajectory: benchmarks/bench_trajectory.py's
    LM case ran 0.77-1.10x stacked against separate calls (a chain's logits fill the cache).
    """
    from sltrepro.llc import SamplerSettings, estimate_llc

    result = estimate_llc(
        model,
        next_token_loss,
        data.llc_data,
        SamplerSettings.from_config(cfg["llc"]),
        seed=seed,
        device=device,
        verbose=False,
    )
    trace = result.llc_trace.astype(np.float32)
    return {"llc": result.llc_mean, **result.summary_row(prefix="llc_")}, trace


@torch.no_grad()
def ed_outputs(model: AttnOnlyLM, data: EvalData, cfg: dict) -> np.ndarray:
    """Log-probabilities on the essential-dynamics inputs, flattened: (S * T/stride * V,)."""
    ed = cfg["essential_dynamics"]
    inputs = data.windows[: ed["sequences"], :-1]
    logp = F.log_softmax(model(inputs), dim=-1)[:, :: ed["stride"]]
    return logp.reshape(-1).numpy().astype(np.float32)


def evaluate_checkpoint(model: AttnOnlyLM, data: EvalData, cfg: dict, seed: int, device):
    """All per-checkpoint metrics (a flat dict), the essential-dynamics output vector and
    the LLC chains' (C, D) trace."""
    model.eval()
    beh = behaviour(model, data)
    llc, trace = checkpoint_llc(model, data, cfg, seed, device)
    icl = cfg["icl"]
    row = {
        "val_loss": float(beh["loss_by_position"].mean()),
        "bigram_score": beh["bigram_score"],
        "ngram_score": beh["ngram_score"],
        "icl_score": icl_score(beh["loss_by_position"], icl["early"], icl["late"], icl["width"]),
        **head_scores(model, data, cfg, seed),
        **llc,
    }
    row.update({f"loss_t{t}": float(v) for t, v in enumerate(beh["loss_by_position"])})
    return row, ed_outputs(model, data, cfg), trace


def evaluate_block(
    cfg: dict,
    seed: int,
    block: int,
    tokens: np.ndarray,
    vocab: int,
    snapshots: Path,
    device,
    log,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Metrics, LLC and essential-dynamics outputs of the checkpoints of ``block`` (their
    weights in the folder ``snapshots``) -> (one row per checkpoint, (T_block, D) outputs,
    (T_block, C, draws) LLC traces)."""
    steps = checkpoint_blocks(cfg)[block]
    data = make_eval_data(cfg, tokens, vocab, seed)
    model = build_model(cfg, vocab)
    rows, outputs, traces = [], [], []
    for step in steps:
        model.load_state_dict(torch.load(snapshot_path(snapshots, step), map_location="cpu"))
        row, out, trace = evaluate_checkpoint(model, data, cfg, seed, device)
        log.info(
            "step %d: loss %.3f llc %.2f icl %.3f",
            step,
            row["val_loss"],
            row["llc"],
            row["icl_score"],
        )
        rows.append({"step": step, **row})
        outputs.append(out)
        traces.append(trace)
    return pd.DataFrame(rows), np.stack(outputs), np.stack(traces)


# -- step 4: stages, essential dynamics, claims' metrics -------------------------------------
def standard_error(rows: pd.DataFrame) -> pd.Series:
    """The standard error of each LLC estimate of ``rows`` (``summary_row(prefix="llc_")``
    columns): the spread of its live chains over sqrt(chains)."""
    return rows["llc_std"] / np.sqrt(rows["llc_num_chains"] - rows["llc_diverged_chains"])


def head_max(table: pd.DataFrame, kind: str, layer: int) -> np.ndarray:
    """(T,) the largest score of ``kind`` ("prev"/"induction") over the heads of a layer."""
    return table.filter(regex=rf"^{kind}_l{layer}h\d+$").max(axis=1).to_numpy()


def crossing_step(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    """First step where ``values`` reaches ``level``, interpolated linearly in log(step+1)
    between the checkpoints on either side; NaN if never reached."""
    above = np.flatnonzero(values >= level)
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(steps[0])
    x0, x1 = np.log1p(steps[i - 1 : i + 1])
    frac = (level - values[i - 1]) / (values[i] - values[i - 1])
    return float(np.expm1(x0 + frac * (x1 - x0)))


def checkpoint_index(step: float, steps: np.ndarray) -> float:
    """``step`` on the checkpoint-index axis (interpolated in log(step+1))."""
    return float(np.interp(np.log1p(step), np.log1p(steps), np.arange(len(steps))))


def induction_rise(steps: np.ndarray, score: np.ndarray) -> dict:
    """Where the induction score rises: the steps at which it first covers 20%, 50% and 80%
    of its climb from the initial value to its maximum."""
    lo, hi = score[0], score.max()
    return {
        f"p{int(q * 100)}": crossing_step(steps, score, lo + q * (hi - lo)) for q in (0.2, 0.5, 0.8)
    }


def induction_metrics(steps: np.ndarray, induction: np.ndarray, icl: np.ndarray, found, cfg):
    """Where the induction score rises and what the ICL score and the stages do there.

    The rise counts only when the best layer-1 head ends up above ``head_scores.formed_at``
    (an induction head formed); otherwise every rise metric is None, so its claims fail.
    """
    formed = bool(induction.max() >= cfg["head_scores"]["formed_at"])
    out = {"lm_induction_formed": formed}
    keys = ("rise_step", "rise_width_log", "rise_boundary_distance", "rise_at_boundary")
    out.update({f"lm_induction_{k}": None for k in keys})
    out["lm_icl_score_change_over_induction_rise"] = None
    if not formed:
        return out
    rise = induction_rise(steps, induction)
    rise_index = checkpoint_index(rise["p50"], steps)
    bounds = stages.boundaries(found)
    distance = min((abs(checkpoint_index(b, steps) - rise_index) for b in bounds), default=None)
    # the ICL score from one checkpoint before the rise starts to one after it ends
    i_start = max(int(np.floor(checkpoint_index(rise["p20"], steps))) - 1, 0)
    i_end = min(int(np.ceil(checkpoint_index(rise["p80"], steps))) + 1, len(steps) - 1)
    out.update(
        {
            "lm_induction_rise_step": rise["p50"],
            "lm_induction_rise_width_log": float(np.log1p(rise["p80"]) - np.log1p(rise["p20"])),
            "lm_induction_rise_boundary_distance": distance,
            "lm_induction_rise_at_boundary": bool(distance is not None and distance <= 1.0),
            "lm_icl_score_change_over_induction_rise": float(icl[i_end] - icl[i_start]),
        }
    )
    return out


def stage_of(step: float, found: list) -> int:
    """Index of the detected stage whose [start, end] holds ``step`` (stages tile the run;
    a step on a boundary belongs to the earlier stage)."""
    return next((i for i, s in enumerate(found) if step <= s.end), len(found) - 1)


def stage_order_metrics(steps, induction, prev, bigram, icl, found, cfg) -> dict:
    """When the induction score crosses ``head_scores.formed_at``, against the stages and
    the other scores: the stage it crosses in, its level at that stage's start, the ICL
    score's change over that stage, whether the bigram minimum lies in an earlier stage and
    whether the best previous-token head (layer 0) crossed the same level first.

    Everything is None when the induction score never crosses (no induction head); the
    level before the stage is None when it crosses in the first stage (there is no "before").
    """
    level = cfg["head_scores"]["formed_at"]
    cross = crossing_step(steps, induction, level)
    prev_cross = crossing_step(steps, prev, level)
    out = {
        "lm_induction_cross_step": None if np.isnan(cross) else cross,
        "lm_prev_token_cross_step": None if np.isnan(prev_cross) else prev_cross,
        "lm_induction_cross_stage": None,
        "lm_induction_score_before_cross_stage": None,
        "lm_icl_score_change_over_induction_stage": None,
        "lm_bigram_min_before_induction_stage": None,
        "lm_prev_token_before_induction": None,
    }
    if np.isnan(cross):
        return out
    k = stage_of(cross, found)
    start, end = found[k].start, found[k].end
    at_start = np.flatnonzero(steps <= start)[-1]  # the last checkpoint at or before the start
    at_end = np.flatnonzero(steps >= end)[0]
    out.update(
        {
            "lm_induction_cross_stage": k,
            "lm_induction_score_before_cross_stage": (
                float(induction[: at_start + 1].max()) if k > 0 else None
            ),
            "lm_icl_score_change_over_induction_stage": float(icl[at_end] - icl[at_start]),
            "lm_bigram_min_before_induction_stage": bool(
                stage_of(float(steps[int(np.argmin(bigram))]), found) < k
            ),
            # a previous-token head that never forms did not form first
            "lm_prev_token_before_induction": bool(not np.isnan(prev_cross) and prev_cross < cross),
        }
    )
    return out


def summarize(table: pd.DataFrame, found: list, cfg: dict) -> dict:
    """The flat metrics of the LM half (keys prefixed ``lm_``)."""
    steps = table["step"].to_numpy(dtype=float)
    induction = head_max(table, "induction", cfg["n_layers"] - 1)
    prev = head_max(table, "prev", 0)
    icl = table["icl_score"].to_numpy()
    first = found[0]
    bigram = table["bigram_score"].to_numpy()
    bigram_min_step = float(steps[int(np.argmin(bigram))])
    bounds = stages.boundaries(found)
    return {
        "lm_num_stages": len(found),
        "lm_stage_types": stages.stage_string(found),
        **{f"lm_boundary{i + 1}_step": b for i, b in enumerate(bounds[:4])},
        "lm_first_stage_type_a": first.type == "A",
        "lm_first_stage_end": first.end,
        "lm_first_stage_llc_rise": first.llc_end - first.llc_start,
        "lm_bigram_min_step": bigram_min_step,
        "lm_bigram_min_in_first_stage": bool(first.type == "A" and bigram_min_step <= first.end),
        "lm_bigram_score_init": float(bigram[0]),
        "lm_bigram_score_min": float(bigram.min()),
        "lm_ngram_score_init": float(table["ngram_score"].iloc[0]),
        "lm_ngram_score_final": float(table["ngram_score"].iloc[-1]),
        "lm_prev_token_score_final": float(prev[-1]),
        "lm_induction_score_init": float(induction[0]),
        "lm_induction_score_final": float(induction[-1]),
        "lm_induction_score_max": float(induction.max()),
        **induction_metrics(steps, induction, icl, found, cfg),
        **stage_order_metrics(steps, induction, prev, bigram, icl, found, cfg),
        "lm_icl_score_init": float(icl[0]),
        "lm_icl_score_final": float(icl[-1]),
        "lm_val_loss_init": float(table["val_loss"].iloc[0]),
        "lm_val_loss_final": float(table["val_loss"].iloc[-1]),
        "lm_llc_init": float(table["llc"].iloc[0]),
        "lm_llc_final": float(table["llc"].iloc[-1]),
        "lm_llc_max": float(table["llc"].max()),
        "lm_llc_all_finite": bool(np.isfinite(table["llc"]).all()),
        # the health verdict of every checkpoint's LLC estimate (sltrepro.llc_diagnostics)
        "lm_llc_healthy": bool(table["llc_healthy"].astype(bool).all()),
        "lm_llc_healthy_fraction": float(table["llc_healthy"].astype(bool).mean()),
        **health_metrics(table, "lm_", [f"step {s}" for s in table["step"]], row_prefix="llc_"),
    }


# what the seeds' spread is reported for: the steps of the developmental events and the
# sizes the claims and the README read
SPREAD_KEYS = (
    "induction_cross_step",
    "prev_token_cross_step",
    "induction_rise_step",
    "induction_score_final",
    "induction_score_before_cross_stage",
    "icl_score_change_over_induction_rise",
    "icl_score_change_over_induction_stage",
    "bigram_min_step",
    "first_stage_llc_rise",
    "llc_final",
    "val_loss_final",
)


def across_seeds(per_seed: dict[int, dict]) -> dict:
    """The LM half's metrics over several seeds ({seed: metrics of :func:`summarize`}, the
    reference seed first): the reference's metrics, ``<flag>_all_seeds`` for every boolean,
    ``<key>_seed_{mean,sd,min,max}`` of :data:`SPREAD_KEYS`, the stage order across seeds
    (:func:`sltrepro.seeds.stage_order`), ``lm_seeds`` (how many) and
    ``lm_llc_health_reasons_all_seeds`` (why a seed's LLC estimates fail the health gate)."""
    bare = [{k.removeprefix("lm_"): v for k, v in m.items()} for m in per_seed.values()]
    out = (
        bare[0]
        | all_seeds_flags(bare)
        | spread(bare, SPREAD_KEYS)
        | stage_order(bare)
        | {"seeds": len(bare)}
    )
    out = {f"lm_{k}": v for k, v in out.items()}
    out["lm_llc_health_reasons_all_seeds"] = joined_reasons(per_seed, "lm_llc_health_reasons")
    return out


@dataclass
class Analysis:
    """The LM half's analysis: its metrics and the tables the figures draw."""

    metrics: dict
    table: pd.DataFrame
    """one row per checkpoint, by step"""
    stages: dict
    """types, stages, GP kernel, turning steps of the essential dynamics, matched boundaries"""
    essential_dynamics: pd.DataFrame
    """step, pc1..pcN, turning_point"""
    fit: pd.DataFrame
    """the GP fit of LLC vs log step (log_step, llc_fit, llc_fit_std)"""
    llc_traces: np.ndarray
    """(T, C, draws) every checkpoint's LLC chains nbeta * (L(w) - L(w*)), by step"""


def analyze(
    cfg: dict, seed: int, blocks: list[pd.DataFrame], outputs: list, traces: list, log
) -> Analysis:
    """Stages, essential dynamics and metrics from the evaluation blocks (their tables,
    output arrays and LLC traces, in block order)."""
    table = pd.concat(blocks, ignore_index=True)
    outputs, traces = np.concatenate(outputs), np.concatenate(traces)
    order = np.argsort(table["step"].to_numpy(), kind="stable")  # blocks are interleaved
    table = table.iloc[order].reset_index(drop=True)
    outputs, traces = outputs[order], traces[order]
    steps = table["step"].to_numpy(dtype=float)
    stage_cfg = dict(cfg["stages"])
    ed_components, ed_smooth = stage_cfg.pop("ed_components"), stage_cfg.pop("ed_smooth")
    sem = standard_error(table)
    found, fit = stages.detect_stages(
        steps, table["llc"].to_numpy(), llc_sem=sem.to_numpy(), seed=seed, **stage_cfg
    )
    ed = stages.essential_dynamics(outputs, ed_components)
    turns = stages.turning_points(steps, ed.coords, smooth=ed_smooth)
    matched = stages.match_to_checkpoints(stages.boundaries(found), steps[turns], steps)
    metrics = summarize(table, found, cfg)
    metrics["lm_ed_boundaries_matched"] = sum(matched)
    metrics["lm_ed_boundaries_matched_fraction"] = sum(matched) / len(matched) if matched else None
    log.info("stages %s at %s", stages.stage_string(found), stages.boundaries(found))
    summary = {
        "types": stages.stage_string(found),
        "stages": [asdict(s) for s in found],
        "kernel": fit.kernel,
        "ed_turning_steps": [float(steps[i]) for i in turns],
        "ed_boundary_matched": matched,
    }
    ed_table = pd.DataFrame(ed.coords, columns=[f"pc{i + 1}" for i in range(ed.coords.shape[1])])
    ed_table.insert(0, "step", steps)
    ed_table["turning_point"] = np.isin(np.arange(len(steps)), turns)
    fit_table = {"log_step": fit.log_steps, "llc_fit": fit.mean, "llc_fit_std": fit.std}
    return Analysis(metrics, table, summary, ed_table, pd.DataFrame(fit_table), traces)
