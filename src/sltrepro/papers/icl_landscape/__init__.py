"""Steps of icl_landscape (Hoogland et al. 2024, "The Developmental Landscape of In-Context
Learning"); the method is in pipeline.py (the regression half) and lm_pipeline.py (the
language-model half).

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/icl_landscape.smk and icl_landscape_lm.smk only.
"""

import json
import os

import numpy as np
import pandas as pd
import torch

from . import head_llc, lm_pipeline, pipeline

# -- the regression half ---------------------------------------------------------------------


def _regression(ctx) -> dict:
    return ctx.config["regression"]


def _run(ctx) -> tuple[int, bool]:
    """--opt run=seedS or run=lr_control_seedS -> (S, whether it is the LR control)."""
    return pipeline.parse_run(ctx.opt("run"))


def train(ctx) -> None:
    """--opt run=R: one training run -> checkpoints ({step: state_dict}), history."""
    seed, lr_control = _run(ctx)
    states, history = pipeline.train_seed(
        _regression(ctx), seed, ctx.resume_dir, ctx.log, lr_control=lr_control, device=ctx.device
    )
    torch.save(states, ctx.output("checkpoints"))
    history.to_csv(ctx.output("history"), index=False)


def _states(ctx) -> dict:
    return torch.load(ctx.input("checkpoints"), weights_only=False)


def llc(ctx) -> None:
    """--opt run=R --opt block=B --opt replicate=0|1: the LLC of one block of checkpoints
    -> llc, traces (the LR control's on the same data and chain seeds as its seed's main
    run; a replicate's at its sparser checkpoints, pipeline.llc_steps)."""
    table, traces = pipeline.llc_block(
        _regression(ctx),
        _states(ctx),
        _run(ctx)[0],
        ctx.opt("block", int),
        ctx.device,
        ctx.log,
        replicate=bool(ctx.opt("replicate", int)),
    )
    table.to_csv(ctx.output("llc"), index=False)
    np.save(ctx.output("traces"), traces)


def probe(ctx) -> None:
    """--opt run=R: behaviour and structure of every checkpoint -> probe, outputs."""
    table, outputs = pipeline.probe_seed(_regression(ctx), _states(ctx), _run(ctx)[0])
    table.to_csv(ctx.output("probe"), index=False)
    np.save(ctx.output("outputs"), outputs)


def analyze(ctx) -> dict:
    """Stages, essential dynamics and metrics of every seed -> per-seed tables, baselines
    and the regression half's metrics. Every per-seed list of the rule is in the config's
    seed order; ``llc`` holds every block of a seed in turn (the rule's ``expand()``)."""
    cfg = _regression(ctx)
    seeds, blocks = cfg["seeds"], cfg["llc"]["blocks"]
    llc_files = ctx.input_list("llc")
    if len(llc_files) != len(seeds) * blocks:
        raise ValueError(f"--input llc: {len(llc_files)} files for {len(seeds)} x {blocks}")
    base = pipeline.baselines(cfg, seeds[0])
    base.to_csv(ctx.output("baselines"), index=False)
    per_seed = {}
    files = zip(
        seeds,
        ctx.input_list("probe"),
        ctx.input_list("outputs"),
        *(ctx.output_list(name) for name in ("tables", "fits", "ed", "stages")),
        strict=True,
    )
    for i, (seed, probe_in, outputs_in, table_out, fit_out, ed_out, stages_out) in enumerate(files):
        llc_blocks = [pd.read_csv(p) for p in llc_files[i * blocks : (i + 1) * blocks]]
        table = pipeline.seed_table(llc_blocks, pd.read_csv(probe_in))
        result = pipeline.analyze_seed(cfg, seed, table, np.load(outputs_in), base, ctx.log)
        result.table.to_csv(table_out, index=False)
        result.fit.to_csv(fit_out, index=False)
        result.essential_dynamics.to_csv(ed_out, index=False)
        stages_out.write_text(json.dumps(result.stages, indent=2))
        per_seed[seed] = result.metrics
    return pipeline.summarize(cfg, per_seed, base)


def lr_control(ctx) -> dict:
    """The learning-rate control (its LLC blocks and probe) against the first seed's main
    run (its checkpoint table and stages) -> the control's table, fit, stages, metrics."""
    cfg = _regression(ctx)
    llc_blocks = [pd.read_csv(p) for p in ctx.input_list("llc")]
    table = pipeline.seed_table(llc_blocks, pd.read_csv(ctx.input("probe")))
    main_stages = json.loads(ctx.input("main_stages").read_text())["stages"]
    out, summary, fit = pipeline.compare_lr_control(
        cfg, pd.read_csv(ctx.input("main_table")), main_stages, table
    )
    table.to_csv(ctx.output("table"), index=False)
    fit.to_csv(ctx.output("fit"), index=False)
    ctx.output("stages").write_text(json.dumps(summary, indent=2))
    ctx.log.info("LR control: %s", out)
    return {f"regression_{k}": v for k, v in out.items()}


def _replicates(ctx, later: list[int]) -> dict[int, tuple[pd.DataFrame, pd.DataFrame]]:
    """{seed: (table, fit)} of the later seeds from --input replicate_tables and
    replicate_fits (both in the order of ``later``)."""
    pairs = zip(ctx.input_list("replicate_tables"), ctx.input_list("replicate_fits"), strict=True)
    return {
        seed: (pd.read_csv(t), pd.read_csv(f)) for seed, (t, f) in zip(later, pairs, strict=True)
    }


def regression_figures(ctx) -> None:
    """The figures of one seed (the rule passes the first seed's tables, LLC blocks and
    their traces, the learning-rate control's table and fit when there is one, and the
    later seeds' tables and fits in the config's seed order when there are several)."""
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    control = replicates = None
    if "control" in ctx.named_inputs:
        control = tuple(pd.read_csv(p) for p in ctx.input_list("control"))
    if "replicate_tables" in ctx.named_inputs:
        replicates = _replicates(ctx, _regression(ctx)["seeds"][1:])
    figures.draw_all(
        pd.read_csv(ctx.input("table")),
        pd.read_csv(ctx.input("fit")),
        json.loads(ctx.input("stages").read_text())["stages"],
        pd.read_csv(ctx.input("baselines")),
        pd.read_csv(ctx.input("ed")),
        pd.concat([pd.read_csv(path) for path in ctx.input_list("llc")]),
        np.concatenate([np.load(path) for path in ctx.input_list("llc_traces")]),
        ctx.outdir,
        control,
        replicates,
    )


def metrics(ctx) -> dict:
    """The metrics of both halves (--input parts=...) merged into the paper's metrics."""
    parts = {str(path): json.loads(path.read_text()) for path in ctx.input_list("parts")}
    return pipeline.merge_metrics(parts)


# -- the language-model half -----------------------------------------------------------------


def _language(ctx) -> dict:
    return ctx.config["language"]


def lm_corpus(ctx) -> None:
    """Corpus and tokenizer (shared by every seed) -> tokens, tokenizer, corpus."""
    data = lm_pipeline.prepare_data(_language(ctx), ctx.log)
    ctx.output("tokenizer").write_text(data.tokenizer_json)
    ctx.output("corpus").write_text(json.dumps(data.info, indent=2))
    np.save(ctx.output("tokens"), data.tokens)


def _seed(ctx) -> int:
    return ctx.opt("seed", int)


def lm_train(ctx) -> None:
    """--opt seed=S: the LM's training on the corpus -> history and the folder of
    checkpoint weights (checkpoints)."""
    tokens, vocab = _tokens(ctx)
    # Snakemake removes the outputs of an interrupted job before it reruns it, so training
    # writes into the resume folder (resuming from state.pt) and the finished snapshots
    # move to the output. The state goes first: a run killed in between retrains from the
    # start, skipping the snapshots it finds, and gives the same weights.
    work = ctx.resume_dir
    history = lm_pipeline.train(
        _language(ctx), _seed(ctx), tokens, vocab, work, ctx.device, ctx.log
    )
    history.to_csv(ctx.output("history"), index=False)
    (work / "state.pt").unlink()
    os.replace(work / "checkpoints", ctx.output("checkpoints"))


def _tokens(ctx) -> tuple[np.ndarray, int]:
    vocab = json.loads(ctx.input("corpus").read_text())["vocab_size"]
    return np.load(ctx.input("tokens")), vocab


def lm_evaluate(ctx) -> None:
    """--opt seed=S --opt block=B: metrics, LLC and essential-dynamics outputs of one block
    of seed S's checkpoints -> metrics, outputs, traces (the LLC chains)."""
    tokens, vocab = _tokens(ctx)
    table, outputs, traces = lm_pipeline.evaluate_block(
        _language(ctx),
        _seed(ctx),
        ctx.opt("block", int),
        tokens,
        vocab,
        ctx.input("checkpoints"),
        ctx.device,
        ctx.log,
    )
    table.to_csv(ctx.output("metrics"), index=False)
    np.save(ctx.output("outputs"), outputs)
    np.save(ctx.output("traces"), traces)


def lm_analyze(ctx) -> dict:
    """--opt seed=S: stages, essential dynamics and metrics of seed S from its evaluation
    blocks (in block order) -> table, stages, ed, fit, traces and the seed's metrics."""
    result = lm_pipeline.analyze(
        _language(ctx),
        _seed(ctx),
        [pd.read_csv(p) for p in ctx.input_list("block_metrics")],
        [np.load(p) for p in ctx.input_list("block_outputs")],
        [np.load(p) for p in ctx.input_list("block_traces")],
        ctx.log,
    )
    result.table.to_csv(ctx.output("table"), index=False)
    ctx.output("stages").write_text(json.dumps(result.stages, indent=2))
    result.essential_dynamics.to_csv(ctx.output("ed"), index=False)
    result.fit.to_csv(ctx.output("fit"), index=False)
    np.save(ctx.output("traces"), result.llc_traces)
    return result.metrics


def lm_seeds(ctx) -> dict:
    """The metrics of every seed (--input seed_metrics, in the order of ``seeds``) -> the LM
    half's metrics: the reference seed's and what the seeds show together."""
    per_seed = {
        seed: json.loads(path.read_text())
        for seed, path in zip(_language(ctx)["seeds"], ctx.input_list("seed_metrics"), strict=True)
    }
    return lm_pipeline.across_seeds(per_seed)


def _head_estimates(ctx, estimate, *where) -> None:
    """Run one of head_llc's estimates on the checkpoints of --opt seed=S (the reference
    seed; ``where``: its block, if any) -> llc, traces."""
    tokens, vocab = _tokens(ctx)
    args = (_language(ctx), _seed(ctx), *where, tokens, vocab, ctx.input("checkpoints"))
    table, traces = estimate(*args, ctx.device, ctx.log)
    table.to_csv(ctx.output("llc"), index=False)
    np.save(ctx.output("traces"), traces)


def lm_head_llc(ctx) -> None:
    """--opt block=B: the weight-refined LLC of one block of heads at every head-LLC
    checkpoint -> llc (one row per head and checkpoint), traces."""
    _head_estimates(ctx, head_llc.estimate_block, ctx.opt("block", int))


def lm_head_plain_llc(ctx) -> None:
    """Every head's wrLLC at the last checkpoint on plain-text windows -> llc, traces."""
    _head_estimates(ctx, head_llc.estimate_plain_text)


def lm_heads(ctx) -> dict:
    """Head types, the wrLLC and the data-refined metrics from the head blocks, the
    plain-text estimates and the LM analysis table -> table (every head's wrLLC curve with
    its type), data_refined (spans against plain text per head) and the metrics."""
    metrics, table, refined = head_llc.summarize(
        pd.concat([pd.read_csv(p) for p in ctx.input_list("block_llc")], ignore_index=True),
        pd.read_csv(ctx.input("plain_llc")),
        pd.read_csv(ctx.input("checkpoints")),
        _language(ctx),
    )
    table.to_csv(ctx.output("table"), index=False)
    refined.to_csv(ctx.output("data_refined"), index=False)
    return metrics


def lm_draw(ctx) -> None:
    """The LM figures from the reference seed's analysis tables (and the later seeds'
    tables and fits, in the order of ``seeds``, when there are several)."""
    # lm_figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import lm_figures

    cfg = _language(ctx)
    replicates = None
    if "replicate_tables" in ctx.named_inputs:
        replicates = _replicates(ctx, cfg["seeds"][1:])
    lm_figures.draw_all(
        pd.read_csv(ctx.input("table")),
        pd.read_csv(ctx.input("fit")),
        json.loads(ctx.input("stages").read_text())["stages"],
        pd.read_csv(ctx.input("ed")),
        np.load(ctx.input("traces")),
        pd.read_csv(ctx.input("heads")),
        cfg["n_layers"],
        ctx.outdir,
        replicates,
    )


STEPS = {
    "train": train,
    "llc": llc,
    "probe": probe,
    "analyze": analyze,
    "lr_control": lr_control,
    "figures": regression_figures,
    "metrics": metrics,
    "lm_corpus": lm_corpus,
    "lm_train": lm_train,
    "lm_evaluate": lm_evaluate,
    "lm_analyze": lm_analyze,
    "lm_seeds": lm_seeds,
    "lm_head_llc": lm_head_llc,
    "lm_head_plain_llc": lm_head_plain_llc,
    "lm_heads": lm_heads,
    "lm_figures": lm_draw,
}
