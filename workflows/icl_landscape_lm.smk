# Hoogland et al. 2024, part 2: the two-layer attention-only language model (rules
# icl_landscape_lm_*). Included by workflows/icl_landscape.smk: corpus (tokens, tokenizer)
# -> per seed of `language.seeds`: train (checkpoints) -> evaluate (metrics + LLC, one job
# per block of checkpoints) -> analyze (stages, essential dynamics) -> seeds (what every
# seed shows) -> language/metrics.json, merged by icl_landscape_metrics. The per-head LLCs
# and the figures are the reference seed's (the first). Uses ICL (paper_rules) of
# icl_landscape.smk.
ICL_LM_CFG = ICL.cfg["language"]
ICL_LM_FIGURE_NAMES = figure_names(ICL.paper, "lm_figures")
ICL_LM = f"{ICL.out}/language"
ICL_LM_BLOCKS = range(ICL_LM_CFG["llc"]["blocks"])
ICL_LM_HEAD_BLOCKS = range(ICL_LM_CFG["head_llc"]["blocks"])
# the first seed is the reference: its per-head LLCs and figures (inputs: expand(..., seed=it))
ICL_LM_SEEDS = ICL_LM_CFG["seeds"]
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
ICL_LM_CORPUS_KEYS = [
    "corpus",
    "corpus_chars",
    "text_field",
    "tokenizer_chars",
    "vocab_size",
]
ICL_LM_TRAIN_KEYS = (
    ICL_LM_MODEL_KEYS
    + ICL_LM_CHECKPOINT_KEYS
    + ICL_LM_SPAN_KEYS
    + ["batch_size", "lr", "weight_decay"]
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


rule icl_landscape_lm_corpus:
    output:
        corpus=f"{ICL_LM}/corpus/corpus.json",
        tokens=f"{ICL_LM}/corpus/tokens.npy",
        tokenizer=f"{ICL_LM}/corpus/tokenizer.json",
    log:
        ICL.log("lm_corpus"),
    benchmark:
        ICL.benchmark("lm_corpus")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_CORPUS_KEYS]),
    shell:
        ICL.step(
            "lm_corpus",
            f"{ICL_LM}/corpus",
            outputs=["corpus", "tokens", "tokenizer"],
        )


rule icl_landscape_lm_train:
    input:
        tokens=rules.icl_landscape_lm_corpus.output.tokens,
        corpus=rules.icl_landscape_lm_corpus.output.corpus,
    output:
        history=f"{ICL_LM}/seed{{seed}}/train/history.csv",
        checkpoints=directory(f"{ICL_LM}/seed{{seed}}/train/checkpoints"),
    log:
        ICL.log("lm_train_seed{seed}"),
    benchmark:
        ICL.benchmark("lm_train_seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_TRAIN_KEYS]),
    shell:
        ICL.step(
            "lm_train",
            f"{ICL_LM}/seed{{wildcards.seed}}/train",
            "--opt seed={wildcards.seed}",
            inputs=["tokens", "corpus"],
            outputs=["history", "checkpoints"],
        )


rule icl_landscape_lm_evaluate:
    input:
        tokens=rules.icl_landscape_lm_corpus.output.tokens,
        corpus=rules.icl_landscape_lm_corpus.output.corpus,
        checkpoints=rules.icl_landscape_lm_train.output.checkpoints,
    output:
        metrics=f"{ICL_LM}/seed{{seed}}/evaluate/block{{block}}/metrics.csv",
        outputs=f"{ICL_LM}/seed{{seed}}/evaluate/block{{block}}/outputs.npy",
        traces=f"{ICL_LM}/seed{{seed}}/evaluate/block{{block}}/llc_traces.npy",
    log:
        ICL.log("lm_evaluate_seed{seed}_block{block}"),
    benchmark:
        ICL.benchmark("lm_evaluate_seed{seed}_block{block}")
    wildcard_constraints:
        seed=r"\d+",
        block=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_EVALUATE_KEYS]),
    shell:
        ICL.step(
            "lm_evaluate",
            f"{ICL_LM}/seed{{wildcards.seed}}/evaluate/block{{wildcards.block}}",
            "--opt seed={wildcards.seed} --opt block={wildcards.block}",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["metrics", "outputs", "traces"],
        )


rule icl_landscape_lm_analyze:
    input:
        # every block of the job's seed, in block order: the step concatenates them and
        # sorts by step ({seed} stays a wildcard)
        block_metrics=expand(
            rules.icl_landscape_lm_evaluate.output.metrics,
            block=ICL_LM_BLOCKS,
            allow_missing=True,
        ),
        block_outputs=expand(
            rules.icl_landscape_lm_evaluate.output.outputs,
            block=ICL_LM_BLOCKS,
            allow_missing=True,
        ),
        block_traces=expand(
            rules.icl_landscape_lm_evaluate.output.traces,
            block=ICL_LM_BLOCKS,
            allow_missing=True,
        ),
    output:
        metrics=f"{ICL_LM}/seed{{seed}}/analysis/metrics.json",
        table=f"{ICL_LM}/seed{{seed}}/analysis/checkpoints.csv",
        stages=f"{ICL_LM}/seed{{seed}}/analysis/stages.json",
        ed=f"{ICL_LM}/seed{{seed}}/analysis/essential_dynamics.csv",
        fit=f"{ICL_LM}/seed{{seed}}/analysis/llc_fit.csv",
        traces=f"{ICL_LM}/seed{{seed}}/analysis/llc_traces.npy",
    log:
        ICL.log("lm_analyze_seed{seed}"),
    benchmark:
        ICL.benchmark("lm_analyze_seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the whole block but `seeds`: the analysis is cheap and reads settings of every
        # step before it; a seed added to the list adds jobs and reruns none
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_CFG if k != "seeds"]),
    shell:
        ICL.step(
            "lm_analyze",
            f"{ICL_LM}/seed{{wildcards.seed}}/analysis",
            "--opt seed={wildcards.seed}",
            inputs=["block_metrics", "block_outputs", "block_traces"],
            outputs=["metrics", "table", "stages", "ed", "fit", "traces"],
        )


rule icl_landscape_lm_seeds:
    input:
        # in the order of `seeds`: the first is the reference
        seed_metrics=expand(
            rules.icl_landscape_lm_analyze.output.metrics, seed=ICL_LM_SEEDS
        ),
    output:
        metrics=f"{ICL_LM}/metrics.json",
    log:
        ICL.log("lm_seeds"),
    benchmark:
        ICL.benchmark("lm_seeds")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=ICL.reads("language.seeds"),
    shell:
        ICL.step(
            "lm_seeds",
            ICL_LM,
            inputs=["seed_metrics"],
            outputs=["metrics"],
        )


rule icl_landscape_lm_head_llc:
    input:
        tokens=rules.icl_landscape_lm_corpus.output.tokens,
        corpus=rules.icl_landscape_lm_corpus.output.corpus,
        checkpoints=expand(
            rules.icl_landscape_lm_train.output.checkpoints, seed=ICL_LM_SEEDS[0]
        ),
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
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_HEAD_LLC_KEYS]),
    shell:
        ICL.step(
            "lm_head_llc",
            f"{ICL_LM}/head_llc/block{{wildcards.block}}",
            f"--opt seed={ICL_LM_SEEDS[0]} --opt block={{wildcards.block}}",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_lm_head_plain_llc:
    input:
        tokens=rules.icl_landscape_lm_corpus.output.tokens,
        corpus=rules.icl_landscape_lm_corpus.output.corpus,
        checkpoints=expand(
            rules.icl_landscape_lm_train.output.checkpoints, seed=ICL_LM_SEEDS[0]
        ),
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
        reads=ICL.reads(*[f"language.{k}" for k in ICL_LM_HEAD_LLC_KEYS]),
    shell:
        ICL.step(
            "lm_head_plain_llc",
            f"{ICL_LM}/head_llc/plain_text",
            f"--opt seed={ICL_LM_SEEDS[0]}",
            inputs=["tokens", "corpus", "checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_lm_heads:
    input:
        block_llc=expand(
            rules.icl_landscape_lm_head_llc.output.llc, block=ICL_LM_HEAD_BLOCKS
        ),
        plain_llc=rules.icl_landscape_lm_head_plain_llc.output.llc,
        checkpoints=expand(
            rules.icl_landscape_lm_analyze.output.table, seed=ICL_LM_SEEDS[0]
        ),
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
        **(
            {
                "replicate_tables": expand(
                    rules.icl_landscape_lm_analyze.output.table, seed=ICL_LM_SEEDS[1:]
                ),
                "replicate_fits": expand(
                    rules.icl_landscape_lm_analyze.output.fit, seed=ICL_LM_SEEDS[1:]
                ),
            }
            if len(ICL_LM_SEEDS) > 1
            else {}
        ),
        table=expand(rules.icl_landscape_lm_analyze.output.table, seed=ICL_LM_SEEDS[0]),
        fit=expand(rules.icl_landscape_lm_analyze.output.fit, seed=ICL_LM_SEEDS[0]),
        stages=expand(
            rules.icl_landscape_lm_analyze.output.stages, seed=ICL_LM_SEEDS[0]
        ),
        ed=expand(rules.icl_landscape_lm_analyze.output.ed, seed=ICL_LM_SEEDS[0]),
        traces=expand(
            rules.icl_landscape_lm_analyze.output.traces, seed=ICL_LM_SEEDS[0]
        ),
        heads=rules.icl_landscape_lm_heads.output.table,
        # the later seeds' LLC curves beside the reference's (only when there are any)
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
        reads=ICL.reads("language.n_layers", "language.seeds"),
    shell:
        ICL.step(
            "lm_figures",
            f"{ICL_LM}/figures",
            inputs=["table", "fit", "stages", "ed", "traces", "heads"]
            + (
                ["replicate_tables", "replicate_fits"] if len(ICL_LM_SEEDS) > 1 else []
            ),
        )
