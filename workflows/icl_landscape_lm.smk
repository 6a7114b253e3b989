# Hoogland et al. 2024, part 2: the two-layer attention-only language model (rules
# icl_landscape_lm_*). Included by workflows/icl_landscape.smk: train (corpus, tokenizer,
# checkpoints) -> evaluate (metrics + LLC, one job per block of checkpoints) -> analyze
# (stages, essential dynamics) -> language/metrics.json, merged by icl_landscape_metrics.
ICL_LM_CFG = ICL_CFG["language"]
ICL_LM = f"{ICL}/language"
ICL_LM_BLOCKS = range(ICL_LM_CFG["llc"]["blocks"])
# What each step reads of `language:` (its rule's `reads`, its rerun trigger).
ICL_LM_MODEL_KEYS = ["context", "d_head", "d_model", "n_heads", "n_layers", "val_fraction"]
ICL_LM_CHECKPOINT_KEYS = ["num_linear_checkpoints", "num_log_checkpoints", "steps"]
ICL_LM_TRAIN_KEYS = ICL_LM_MODEL_KEYS + ICL_LM_CHECKPOINT_KEYS + [
    "batch_size",
    "corpus",
    "corpus_chars",
    "lr",
    "text_field",
    "tokenizer_chars",
    "vocab_size",
    "weight_decay",
]
ICL_LM_EVALUATE_KEYS = ICL_LM_MODEL_KEYS + ICL_LM_CHECKPOINT_KEYS + [
    "essential_dynamics",
    "eval_sequences",
    "head_scores.sequences",
    "icl",
    "llc",
    "ngram",
]
ICL_LM_FIGURES = [
    f"{ICL_LM}/figures/{name}.png" for name in ("llc_stages", "metrics", "essential_dynamics")
]


rule icl_landscape_lm_train:
    output:
        f"{ICL_LM}/train/history.csv",
        f"{ICL_LM}/train/corpus.json",
    log:
        paper_log("icl_landscape", "lm_train"),
    benchmark:
        f"{ICL}/benchmarks/lm_train.tsv"
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=reads("icl_landscape", "seed", *[f"language.{k}" for k in ICL_LM_TRAIN_KEYS]),
    shell:
        step("icl_landscape", "lm_train", f"{ICL_LM}/train")


rule icl_landscape_lm_evaluate:
    input:
        f"{ICL_LM}/train/history.csv",
    output:
        f"{ICL_LM}/evaluate/block{{block}}/metrics.csv",
        f"{ICL_LM}/evaluate/block{{block}}/outputs.npy",
    log:
        paper_log("icl_landscape", "lm_evaluate_block{block}"),
    benchmark:
        f"{ICL}/benchmarks/lm_evaluate_block{{block}}.tsv"
    wildcard_constraints:
        block=r"\d+",
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=reads("icl_landscape", "seed", *[f"language.{k}" for k in ICL_LM_EVALUATE_KEYS]),
    shell:
        step(
            "icl_landscape",
            "lm_evaluate",
            f"{ICL_LM}/evaluate/block{{wildcards.block}}",
            "--opt block={wildcards.block}",
        )


rule icl_landscape_lm_analyze:
    input:
        expand(f"{ICL_LM}/evaluate/block{{block}}/metrics.csv", block=ICL_LM_BLOCKS),
    output:
        metrics=f"{ICL_LM}/metrics.json",
        table=f"{ICL_LM}/checkpoints.csv",
        stages=f"{ICL_LM}/stages.json",
        ed=f"{ICL_LM}/essential_dynamics.csv",
        fit=f"{ICL_LM}/llc_fit.csv",
    log:
        paper_log("icl_landscape", "lm_analyze"),
    benchmark:
        f"{ICL}/benchmarks/lm_analyze.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the whole block: the analysis is cheap, and reads settings of every step before it
        reads=reads("icl_landscape", "seed", "language"),
    shell:
        step("icl_landscape", "lm_analyze", ICL_LM)


rule icl_landscape_lm_figures:
    input:
        f"{ICL_LM}/metrics.json",
    output:
        [report_figure("icl_landscape", path, part="language") for path in ICL_LM_FIGURES],
    log:
        paper_log("icl_landscape", "lm_figures"),
    benchmark:
        f"{ICL}/benchmarks/lm_figures.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=reads("icl_landscape", "language.n_layers"),
    shell:
        step("icl_landscape", "lm_figures", f"{ICL_LM}/figures")


ICL_METRICS_PARTS.append(f"{ICL_LM}/metrics.json")
ICL_FIGURES.extend(ICL_LM_FIGURES)
