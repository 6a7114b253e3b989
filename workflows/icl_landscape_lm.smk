# Hoogland et al. 2024, part 2: the two-layer attention-only language model (rules
# icl_landscape_lm_*). Included by workflows/icl_landscape.smk: train (corpus, tokenizer,
# checkpoints) -> evaluate (metrics + LLC, one job per block of checkpoints) -> analyze
# (stages, essential dynamics) -> language/metrics.json, merged by icl_landscape_metrics.
# Uses ICL (paper_rules) of icl_landscape.smk.
ICL_LM_CFG = ICL.cfg["language"]
ICL_LM_FIGURE_NAMES = figure_names(ICL.paper, "lm_figures")
ICL_LM = f"{ICL.out}/language"
ICL_LM_BLOCKS = range(ICL_LM_CFG["llc"]["blocks"])
ICL_LM_HEAD_BLOCKS = range(ICL_LM_CFG["head_llc"]["blocks"])
# What each step reads of `language:` (its rule's `reads`, its rerun trigger).
ICL_LM_MODEL_KEYS = [
    "context",
    "d_head",
    "d_model",
    "n_heads",
    "n_layers",
    "val_fraction",
]
ICL_LM_CHECKPOINT_KEYS = ["num_linear_checkpoints", "num_log_checkpoints", "steps"]
# optional: a profile without repeated spans (smoke, paper) keeps the digests it had
ICL_LM_SPAN_KEYS = ["repeat_spans"] if "repeat_spans" in ICL_LM_CFG else []
ICL_LM_TRAIN_KEYS = (
    ICL_LM_MODEL_KEYS
    + ICL_LM_CHECKPOINT_KEYS
    + ICL_LM_SPAN_KEYS
    + [
        "batch_size",
        "corpus",
        "corpus_chars",
        "lr",
        "text_field",
        "tokenizer_chars",
        "vocab_size",
        "weight_decay",
    ]
)
ICL_LM_EVALUATE_KEYS = (
    ICL_LM_MODEL_KEYS
    + ICL_LM_CHECKPOINT_KEYS
    + ICL_LM_SPAN_KEYS
    + [
        "essential_dynamics",
        "eval_sequences",
        "head_scores.sequences",
        "icl",
        "llc",
        "ngram",
    ]
)
# the weight-refined LLC of each head reads the model, the schedule and its own sampler
ICL_LM_HEAD_LLC_KEYS = (
    ICL_LM_MODEL_KEYS
    + ICL_LM_CHECKPOINT_KEYS
    + ICL_LM_SPAN_KEYS
    + ["head_llc", "llc.sequences"]
)
ICL_LM_FIGURES = [f"{ICL_LM}/figures/{name}.png" for name in ICL_LM_FIGURE_NAMES]


rule icl_landscape_lm_train:
    output:
        history=f"{ICL_LM}/train/history.csv",
        corpus=f"{ICL_LM}/train/corpus.json",
        tokens=f"{ICL_LM}/train/tokens.npy",
        tokenizer=f"{ICL_LM}/train/tokenizer.json",
        checkpoints=directory(f"{ICL_LM}/train/checkpoints"),
    log:
        ICL.log("lm_train"),
    benchmark:
        ICL.benchmark("lm_train")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads("seed", *[f"language.{k}" for k in ICL_LM_TRAIN_KEYS]),
    shell:
        ICL.step(
            "lm_train",
            f"{ICL_LM}/train",
            outputs=["history", "corpus", "tokens", "tokenizer", "checkpoints"],
        )


rule icl_landscape_lm_evaluate:
    input:
        tokens=rules.icl_landscape_lm_train.output.tokens,
        corpus=rules.icl_landscape_lm_train.output.corpus,
        checkpoints=rules.icl_landscape_lm_train.output.checkpoints,
    output:
        metrics=f"{ICL_LM}/evaluate/block{{block}}/metrics.csv",
        outputs=f"{ICL_LM}/evaluate/block{{block}}/outputs.npy",
        traces=f"{ICL_LM}/evaluate/block{{block}}/llc_traces.npy",
    log:
        ICL.log("lm_evaluate_block{block}"),
    benchmark:
        ICL.benchmark("lm_evaluate_block{block}")
    wildcard_constraints:
        block=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads("seed", *[f"language.{k}" for k in ICL_LM_EVALUATE_KEYS]),
    shell:
        ICL.step(
            "lm_evaluate",
            f"{ICL_LM}/evaluate/block{{wildcards.block}}",
            "--opt block={wildcards.block}",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["metrics", "outputs", "traces"],
        )


rule icl_landscape_lm_analyze:
    input:
        # in block order: the step concatenates them and sorts by step
        block_metrics=expand(
            rules.icl_landscape_lm_evaluate.output.metrics, block=ICL_LM_BLOCKS
        ),
        block_outputs=expand(
            rules.icl_landscape_lm_evaluate.output.outputs, block=ICL_LM_BLOCKS
        ),
        block_traces=expand(
            rules.icl_landscape_lm_evaluate.output.traces, block=ICL_LM_BLOCKS
        ),
    output:
        metrics=f"{ICL_LM}/metrics.json",
        table=f"{ICL_LM}/checkpoints.csv",
        stages=f"{ICL_LM}/stages.json",
        ed=f"{ICL_LM}/essential_dynamics.csv",
        fit=f"{ICL_LM}/llc_fit.csv",
        traces=f"{ICL_LM}/llc_traces.npy",
    log:
        ICL.log("lm_analyze"),
    benchmark:
        ICL.benchmark("lm_analyze")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the whole block: the analysis is cheap, and reads settings of every step before it
        reads=ICL.reads("seed", "language"),
    shell:
        ICL.step(
            "lm_analyze",
            ICL_LM,
            inputs=["block_metrics", "block_outputs", "block_traces"],
            outputs=["metrics", "table", "stages", "ed", "fit", "traces"],
        )


rule icl_landscape_lm_head_llc:
    input:
        tokens=rules.icl_landscape_lm_train.output.tokens,
        corpus=rules.icl_landscape_lm_train.output.corpus,
        checkpoints=rules.icl_landscape_lm_train.output.checkpoints,
    output:
        llc=f"{ICL_LM}/head_llc/block{{block}}/llc.csv",
        traces=f"{ICL_LM}/head_llc/block{{block}}/traces.npy",
    log:
        ICL.log("lm_head_llc_block{block}"),
    benchmark:
        ICL.benchmark("lm_head_llc_block{block}")
    wildcard_constraints:
        block=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads("seed", *[f"language.{k}" for k in ICL_LM_HEAD_LLC_KEYS]),
    shell:
        ICL.step(
            "lm_head_llc",
            f"{ICL_LM}/head_llc/block{{wildcards.block}}",
            "--opt block={wildcards.block}",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_lm_head_plain_llc:
    input:
        tokens=rules.icl_landscape_lm_train.output.tokens,
        corpus=rules.icl_landscape_lm_train.output.corpus,
        checkpoints=rules.icl_landscape_lm_train.output.checkpoints,
    output:
        llc=f"{ICL_LM}/head_llc/plain_text/llc.csv",
        traces=f"{ICL_LM}/head_llc/plain_text/traces.npy",
    log:
        ICL.log("lm_head_plain_llc"),
    benchmark:
        ICL.benchmark("lm_head_plain_llc")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads("seed", *[f"language.{k}" for k in ICL_LM_HEAD_LLC_KEYS]),
    shell:
        ICL.step(
            "lm_head_plain_llc",
            f"{ICL_LM}/head_llc/plain_text",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_lm_heads:
    input:
        block_llc=expand(
            rules.icl_landscape_lm_head_llc.output.llc, block=ICL_LM_HEAD_BLOCKS
        ),
        plain_llc=rules.icl_landscape_lm_head_plain_llc.output.llc,
        checkpoints=rules.icl_landscape_lm_analyze.output.table,
    output:
        metrics=f"{ICL_LM}/heads/metrics.json",
        table=f"{ICL_LM}/heads/head_llc.csv",
        data_refined=f"{ICL_LM}/heads/data_refined.csv",
    log:
        ICL.log("lm_heads"),
    benchmark:
        ICL.benchmark("lm_heads")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=ICL.reads(
            *[
                f"language.{k}"
                for k in ICL_LM_MODEL_KEYS + ["head_scores.formed_at", "head_llc"]
            ]
        ),
    shell:
        ICL.step(
            "lm_heads",
            f"{ICL_LM}/heads",
            inputs=["block_llc", "plain_llc", "checkpoints"],
            outputs=["metrics", "table", "data_refined"],
        )


rule icl_landscape_lm_figures:
    input:
        table=rules.icl_landscape_lm_analyze.output.table,
        fit=rules.icl_landscape_lm_analyze.output.fit,
        stages=rules.icl_landscape_lm_analyze.output.stages,
        ed=rules.icl_landscape_lm_analyze.output.ed,
        traces=rules.icl_landscape_lm_analyze.output.traces,
        heads=rules.icl_landscape_lm_heads.output.table,
    output:
        [report_figure(ICL.paper, path, part="language") for path in ICL_LM_FIGURES],
    log:
        ICL.log("lm_figures"),
    benchmark:
        ICL.benchmark("lm_figures")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=ICL.reads("language.n_layers"),
    shell:
        ICL.step(
            "lm_figures",
            f"{ICL_LM}/figures",
            inputs=["table", "fit", "stages", "ed", "traces", "heads"],
        )
