"""icl_landscape, language-model half (Hoogland et al. 2024, Sec. 4 and App. on the LM).

Method, as in the paper:

1. Data: a text corpus (offline standard-library text for smoke/cpu; the paper's Pile subset
   through Hugging Face ``datasets`` for ``paper``), a byte-level BPE tokenizer trained on it,
   the token stream split once into train and validation parts (``lm_train``).
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

Files (under ``results/<profile>/icl_landscape/language``): ``train/`` (tokens, tokenizer,
corpus fingerprint, history, checkpoints), ``evaluate/block<i>/`` (metrics.csv,
outputs.npy), and at the top ``metrics.json``, ``checkpoints.csv``, ``stages.json``,
``essential_dynamics.csv``, ``llc_fit.csv``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from sltrepro import stages
from sltrepro.health import health_metrics
from sltrepro.models.attn_lm import AttnOnlyLM, induction_scores, previous_token_scores
from sltrepro.tasks import corpus
from sltrepro.train.icl import checkpoint_steps as log_linear_steps
from sltrepro.train.lm import LMTrainConfig, next_token_loss, snapshot_path, train_lm

EVAL_CHUNK = 32  # sequences per forward pass in evaluation (bounds memory at large vocab)


# -- configuration helpers -------------------------------------------------------------------
def lm_config(ctx) -> dict:
    return ctx.config["language"]


def language_dir(ctx) -> Path:
    return ctx.results / "language"


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
def prepare_data(cfg: dict, outdir: Path, log) -> None:
    """Corpus -> tokenizer -> token stream; writes tokens.npy, tokenizer.json, corpus.json."""
    if (outdir / "tokens.npy").exists():
        return
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
    (outdir / "tokenizer.json").write_text(tokenizer.to_json())
    (outdir / "corpus.json").write_text(json.dumps(info, indent=2))
    np.save(outdir / "tokens.npy", tokens)


def load_tokens(train_dir: Path, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) 1-D int64 token tensors."""
    tokens = np.load(Path(train_dir) / "tokens.npy").astype(np.int64)
    train, val = corpus.split_tokens(tokens, val_fraction)
    return torch.from_numpy(train), torch.from_numpy(val)


def vocab_size_of(train_dir: Path) -> int:
    return json.loads((Path(train_dir) / "corpus.json").read_text())["vocab_size"]


def lm_train(ctx) -> None:
    """Build the corpus and tokenizer, then train the LM and save its checkpoints."""
    cfg = lm_config(ctx)
    prepare_data(cfg, ctx.outdir, ctx.log)
    train, _ = load_tokens(ctx.outdir, cfg["val_fraction"])
    torch.manual_seed(ctx.config["seed"])
    model = build_model(cfg, vocab_size_of(ctx.outdir)).to(ctx.device)
    ctx.log.info("attention-only LM with %d parameters", model.num_params())
    train_cfg = LMTrainConfig(
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        context=cfg["context"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        seed=ctx.config["seed"],
        snapshot_steps=checkpoint_steps(cfg),
    )
    history = train_lm(model, train, train_cfg, ctx.outdir, ctx.log)
    history.to_csv(ctx.outdir / "history.csv", index=False)


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


def make_eval_data(cfg: dict, train_dir: Path) -> EvalData:
    train, val = load_tokens(train_dir, cfg["val_fraction"])
    vocab = vocab_size_of(train_dir)
    ctx_len = cfg["context"]
    windows = corpus.fixed_windows(val, cfg["eval_sequences"], ctx_len + 1)
    bigram = torch.from_numpy(corpus.bigram_table(train.numpy(), vocab)).float()
    n, top = cfg["ngram"]["n"], cfg["ngram"]["top"]
    grams = corpus.top_ngrams(train.numpy(), n, top, vocab)
    llc_windows = corpus.fixed_windows(train, cfg["llc"]["sequences"], ctx_len + 1)
    return EvalData(
        windows=windows,
        bigram=bigram,
        ngram_mask=ngram_mask(windows, grams, vocab),
        llc_data=(llc_windows[:, :-1], llc_windows[:, 1:]),
    )


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
    tokens, for every head: {"prev_l0h3": ..., "induction_l1h2": ...}."""
    heads = cfg["head_scores"]
    prev = previous_token_scores(model, data.windows[: heads["sequences"], :-1])
    gen = torch.Generator().manual_seed(seed)
    vocab = model.embed.num_embeddings
    ind = induction_scores(model, vocab, cfg["context"] // 2, heads["sequences"], gen)
    out = {}
    for name, scores in (("prev", prev), ("induction", ind)):
        for (layer, head), value in np.ndenumerate(scores.numpy()):
            out[f"{name}_l{layer}h{head}"] = float(value)
    return out


def checkpoint_llc(model: AttnOnlyLM, data: EvalData, cfg: dict, seed: int, device) -> dict:
    """LLC of the mean next-token loss on the LLC training windows (shared estimator)."""
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
    return {"llc": result.llc_mean, **result.summary_row(prefix="llc_")}


@torch.no_grad()
def ed_outputs(model: AttnOnlyLM, data: EvalData, cfg: dict) -> np.ndarray:
    """Log-probabilities on the essential-dynamics inputs, flattened: (S * T/stride * V,)."""
    ed = cfg["essential_dynamics"]
    inputs = data.windows[: ed["sequences"], :-1]
    logp = F.log_softmax(model(inputs), dim=-1)[:, :: ed["stride"]]
    return logp.reshape(-1).numpy().astype(np.float32)


def evaluate_checkpoint(model: AttnOnlyLM, data: EvalData, cfg: dict, seed: int, device):
    """All per-checkpoint metrics (a flat dict) and the essential-dynamics output vector."""
    model.eval()
    beh = behaviour(model, data)
    icl = cfg["icl"]
    row = {
        "val_loss": float(beh["loss_by_position"].mean()),
        "bigram_score": beh["bigram_score"],
        "ngram_score": beh["ngram_score"],
        "icl_score": icl_score(beh["loss_by_position"], icl["early"], icl["late"], icl["width"]),
        **head_scores(model, data, cfg, seed),
        **checkpoint_llc(model, data, cfg, seed, device),
    }
    row.update({f"loss_t{t}": float(v) for t, v in enumerate(beh["loss_by_position"])})
    return row, ed_outputs(model, data, cfg)


def lm_evaluate(ctx) -> None:
    """Metrics, LLC and essential-dynamics outputs of the checkpoints of block ``--opt
    block=i``; reads ``language/train``."""
    cfg = lm_config(ctx)
    block = ctx.opt("block", int)
    steps = checkpoint_blocks(cfg)[block]
    train_dir = language_dir(ctx) / "train"
    data = make_eval_data(cfg, train_dir)
    model = build_model(cfg, vocab_size_of(train_dir))
    rows, outputs = [], []
    for step in steps:
        model.load_state_dict(torch.load(snapshot_path(train_dir, step), map_location="cpu"))
        row, out = evaluate_checkpoint(model, data, cfg, ctx.config["seed"], ctx.device)
        ctx.log.info(
            "step %d: loss %.3f llc %.2f icl %.3f",
            step,
            row["val_loss"],
            row["llc"],
            row["icl_score"],
        )
        rows.append({"step": step, **row})
        outputs.append(out)
    pd.DataFrame(rows).to_csv(ctx.outdir / "metrics.csv", index=False)
    np.save(ctx.outdir / "outputs.npy", np.stack(outputs))


# -- step 4: stages, essential dynamics, claims' metrics -------------------------------------
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


def summarize(table: pd.DataFrame, found: list, cfg: dict) -> dict:
    """The flat metrics of the LM half (keys prefixed ``lm_``)."""
    steps = table["step"].to_numpy(dtype=float)
    induction = head_max(table, "induction", cfg["n_layers"] - 1)
    prev = head_max(table, "prev", 0)
    icl = table["icl_score"].to_numpy()
    first = found[0]
    bigram = table["bigram_score"].to_numpy()
    bigram_min_step = float(steps[int(np.argmin(bigram))])
    return {
        "lm_num_stages": len(found),
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


def lm_analyze(ctx) -> dict:
    """Gather the evaluation blocks; detect stages; essential dynamics; write the metrics."""
    cfg = lm_config(ctx)
    blocks = [
        language_dir(ctx) / "evaluate" / f"block{i}" for i in range(len(checkpoint_blocks(cfg)))
    ]
    table = pd.concat([pd.read_csv(b / "metrics.csv") for b in blocks], ignore_index=True)
    outputs = np.concatenate([np.load(b / "outputs.npy") for b in blocks])
    order = np.argsort(table["step"].to_numpy(), kind="stable")  # blocks are interleaved
    table, outputs = table.iloc[order].reset_index(drop=True), outputs[order]
    steps = table["step"].to_numpy(dtype=float)
    stage_cfg = dict(cfg["stages"])
    ed_components, ed_smooth = stage_cfg.pop("ed_components"), stage_cfg.pop("ed_smooth")
    found, fit = stages.detect_stages(
        steps, table["llc"].to_numpy(), seed=ctx.config["seed"], **stage_cfg
    )
    ed = stages.essential_dynamics(outputs, ed_components)
    turns = stages.turning_points(steps, ed.coords, smooth=ed_smooth)
    matched = stages.match_to_checkpoints(stages.boundaries(found), steps[turns], steps)
    metrics = summarize(table, found, cfg)
    metrics["lm_ed_boundaries_matched"] = sum(matched)
    metrics["lm_ed_boundaries_matched_fraction"] = sum(matched) / len(matched) if matched else None
    ctx.log.info("stages %s at %s", stages.stage_string(found), stages.boundaries(found))
    table.to_csv(ctx.outdir / "checkpoints.csv", index=False)
    (ctx.outdir / "stages.json").write_text(
        json.dumps(
            {
                "types": stages.stage_string(found),
                "stages": [asdict(s) for s in found],
                "kernel": fit.kernel,
                "ed_turning_steps": [float(steps[i]) for i in turns],
                "ed_boundary_matched": matched,
            },
            indent=2,
        )
    )
    ed_table = pd.DataFrame(ed.coords, columns=[f"pc{i + 1}" for i in range(ed.coords.shape[1])])
    ed_table.insert(0, "step", steps)
    ed_table["turning_point"] = np.isin(np.arange(len(steps)), turns)
    ed_table.to_csv(ctx.outdir / "essential_dynamics.csv", index=False)
    fit_table = {"log_step": fit.log_steps, "llc_fit": fit.mean, "llc_fit_std": fit.std}
    pd.DataFrame(fit_table).to_csv(ctx.outdir / "llc_fit.csv", index=False)
    return metrics


def lm_figures(ctx) -> None:
    """The LM figures (see lm_figures.py) into ``ctx.outdir``."""
    from .lm_figures import draw_all

    draw_all(language_dir(ctx), ctx.outdir, lm_config(ctx)["n_layers"])
