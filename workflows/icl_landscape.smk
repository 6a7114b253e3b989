# Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning".
# Part 1, the regression half (rules icl_landscape_*): train -> LLC per block of checkpoints
# -> probe -> analyze (stages, essential dynamics) -> regression/metrics.json.
# Part 2, the language-model half, adds rules named icl_landscape_lm_*, appends its metrics
# file to ICL_METRICS_PARTS and its figures to ICL_FIGURES (before the rules below use them).
ICL_CFG = PAPER_CONFIG["icl_landscape"]
ICL = f"{R}/icl_landscape"
ICL_REG = ICL_CFG["regression"]
ICL_R = f"{ICL}/regression"
ICL_SEEDS = ICL_REG["seeds"]
ICL_BLOCKS = range(ICL_REG["llc"]["blocks"])
# What training reads of `regression:` (its rules' `reads`, their rerun trigger): an edit of
# the LLC, probe or stage settings reruns those steps without retraining.
ICL_TRAIN_KEYS = [
    f"regression.{key}"
    for key in (
        "batch_size",
        "noise_var",
        "num_linear_checkpoints",
        "num_log_checkpoints",
        "num_tasks",
        "peak_lr",
        "steps",
    )
]

ICL_METRICS_PARTS = [f"{ICL_R}/metrics.json"]
ICL_FIGURES = [f"{ICL_R}/figures/{name}.png" for name in ("llc_stages", "metrics", "essential_dynamics")]


rule icl_landscape_train:
    output:
        f"{ICL_R}/train/seed{{seed}}/checkpoints.pt",
        f"{ICL_R}/train/seed{{seed}}/history.csv",
    log:
        paper_log("icl_landscape", "train_seed{seed}"),
    benchmark:
        f"{ICL}/benchmarks/train_seed{{seed}}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    conda:
        ENV
    params:
        reads=reads("icl_landscape", *ICL_TRAIN_KEYS),
    shell:
        step(
            "icl_landscape",
            "train",
            f"{ICL_R}/train/seed{{wildcards.seed}}",
            "--opt seed={wildcards.seed}",
        )


rule icl_landscape_llc:
    input:
        f"{ICL_R}/train/seed{{seed}}/checkpoints.pt",
    output:
        f"{ICL_R}/llc/seed{{seed}}/block{{block}}.csv",
    log:
        paper_log("icl_landscape", "llc_seed{seed}_block{block}"),
    benchmark:
        f"{ICL}/benchmarks/llc_seed{{seed}}_block{{block}}.tsv"
    wildcard_constraints:
        seed=r"\d+",
        block=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    conda:
        ENV
    params:
        reads=reads("icl_landscape", *ICL_TRAIN_KEYS, "regression.llc"),
    shell:
        step(
            "icl_landscape",
            "llc",
            f"{ICL_R}/llc/seed{{wildcards.seed}}",
            "--opt seed={wildcards.seed} --opt block={wildcards.block} --input {input}",
        )


rule icl_landscape_probe:
    input:
        f"{ICL_R}/train/seed{{seed}}/checkpoints.pt",
    output:
        f"{ICL_R}/probe/seed{{seed}}/probe.csv",
        f"{ICL_R}/probe/seed{{seed}}/outputs.npy",
    log:
        paper_log("icl_landscape", "probe_seed{seed}"),
    benchmark:
        f"{ICL}/benchmarks/probe_seed{{seed}}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    params:
        reads=reads(
            "icl_landscape",
            *[f"regression.{k}" for k in ("collapse_tol", "ed_batch", "eval_batch", "noise_var")],
        ),
    shell:
        step(
            "icl_landscape",
            "probe",
            f"{ICL_R}/probe/seed{{wildcards.seed}}",
            "--opt seed={wildcards.seed} --input {input}",
        )


rule icl_landscape_analyze:
    input:
        expand(f"{ICL_R}/llc/seed{{seed}}/block{{block}}.csv", seed=ICL_SEEDS, block=ICL_BLOCKS),
        expand(f"{ICL_R}/probe/seed{{seed}}/probe.csv", seed=ICL_SEEDS),
    output:
        metrics=f"{ICL_R}/metrics.json",
        baselines=f"{ICL_R}/baselines.csv",
        tables=expand(f"{ICL_R}/seed{{seed}}/checkpoints.csv", seed=ICL_SEEDS),
    log:
        paper_log("icl_landscape", "analyze"),
    benchmark:
        f"{ICL}/benchmarks/analyze.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        # the whole block: the analysis is cheap, and reads settings of every step before it
        reads=reads("icl_landscape", "regression"),
    shell:
        step("icl_landscape", "analyze", ICL_R)


rule icl_landscape_figures:
    input:
        f"{ICL_R}/metrics.json",
    output:
        [
            report_figure("icl_landscape", path, part="regression")
            for path in ICL_FIGURES
            if path.startswith(f"{ICL_R}/figures/")
        ],
    log:
        paper_log("icl_landscape", "figures"),
    benchmark:
        f"{ICL}/benchmarks/figures.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    params:
        reads=reads("icl_landscape", "regression.seeds"),
    shell:
        step("icl_landscape", "figures", f"{ICL_R}/figures")


# Part 2 includes its rules here (they extend ICL_METRICS_PARTS and ICL_FIGURES).
if Path("workflows/icl_landscape_lm.smk").exists():

    include: "icl_landscape_lm.smk"


rule icl_landscape_metrics:
    input:
        ICL_METRICS_PARTS,
    output:
        f"{ICL}/metrics.json",
    log:
        paper_log("icl_landscape", "metrics"),
    benchmark:
        f"{ICL}/benchmarks/metrics.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        ENV
    params:
        reads=reads("icl_landscape"),
    shell:
        step("icl_landscape", "metrics", ICL, " ".join(f"--input {p}" for p in ICL_METRICS_PARTS))


FIGURES["icl_landscape"] = ICL_FIGURES


rule icl_landscape:
    input:
        f"{ICL}/report.md",
