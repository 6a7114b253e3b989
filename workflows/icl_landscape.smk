# Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning".
# Part 1, the regression half (rules icl_landscape_*): train -> LLC per block of checkpoints
# -> probe -> analyze (stages, essential dynamics) -> regression/metrics.json.
# Part 2, the language-model half, adds rules named icl_landscape_lm_*, appends its metrics
# file to ICL_METRICS_PARTS and its figures to ICL_FIGURES (before the rules below use them).
from sltrepro.papers.icl_landscape.figures import FIGURES as ICL_FIGURE_NAMES

ICL = paper_rules("icl_landscape")
ICL_REG = ICL.cfg["regression"]
ICL_R = f"{ICL.out}/regression"
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
ICL_FIGURES = [f"{ICL_R}/figures/{name}.png" for name in ICL_FIGURE_NAMES]


rule icl_landscape_train:
    output:
        f"{ICL_R}/train/seed{{seed}}/checkpoints.pt",
        f"{ICL_R}/train/seed{{seed}}/history.csv",
    log:
        ICL.log("train_seed{seed}"),
    benchmark:
        ICL.benchmark("train_seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    params:
        reads=ICL.reads(*ICL_TRAIN_KEYS),
    shell:
        ICL.step(
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
        ICL.log("llc_seed{seed}_block{block}"),
    benchmark:
        ICL.benchmark("llc_seed{seed}_block{block}")
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
        reads=ICL.reads(*ICL_TRAIN_KEYS, "regression.llc"),
    shell:
        ICL.step(
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
        ICL.log("probe_seed{seed}"),
    benchmark:
        ICL.benchmark("probe_seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=ICL.reads(
            *[
                f"regression.{k}"
                for k in ("collapse_tol", "ed_batch", "eval_batch", "noise_var")
            ],
        ),
    shell:
        ICL.step(
            "probe",
            f"{ICL_R}/probe/seed{{wildcards.seed}}",
            "--opt seed={wildcards.seed} --input {input}",
        )


rule icl_landscape_analyze:
    input:
        expand(
            f"{ICL_R}/llc/seed{{seed}}/block{{block}}.csv",
            seed=ICL_SEEDS,
            block=ICL_BLOCKS,
        ),
        expand(f"{ICL_R}/probe/seed{{seed}}/probe.csv", seed=ICL_SEEDS),
    output:
        metrics=f"{ICL_R}/metrics.json",
        baselines=f"{ICL_R}/baselines.csv",
        tables=expand(f"{ICL_R}/seed{{seed}}/checkpoints.csv", seed=ICL_SEEDS),
    log:
        ICL.log("analyze"),
    benchmark:
        ICL.benchmark("analyze")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the whole block: the analysis is cheap, and reads settings of every step before it
        reads=ICL.reads("regression"),
    shell:
        ICL.step("analyze", ICL_R)


rule icl_landscape_figures:
    input:
        f"{ICL_R}/metrics.json",
    output:
        [
            report_figure(ICL.paper, path, part="regression")
            for path in ICL_FIGURES
            if path.startswith(f"{ICL_R}/figures/")
        ],
    log:
        ICL.log("figures"),
    benchmark:
        ICL.benchmark("figures")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=ICL.reads("regression.seeds"),
    shell:
        ICL.step("figures", f"{ICL_R}/figures")


# Part 2 includes its rules here (they extend ICL_METRICS_PARTS and ICL_FIGURES).
if Path("workflows/icl_landscape_lm.smk").exists():

    include: "icl_landscape_lm.smk"


rule icl_landscape_metrics:
    input:
        ICL_METRICS_PARTS,
    output:
        f"{ICL.out}/metrics.json",
    log:
        ICL.log("metrics"),
    benchmark:
        ICL.benchmark("metrics")
    conda:
        ENV
    resources:
        mem_mb=500,
        runtime=5,
    params:
        reads=ICL.reads(),
    shell:
        ICL.step(
            "metrics", ICL.out, " ".join(f"--input {p}" for p in ICL_METRICS_PARTS)
        )


FIGURES[ICL.paper] = ICL_FIGURES


rule icl_landscape:
    input:
        f"{ICL.out}/report.md",
