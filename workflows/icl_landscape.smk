# Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning".
# Part 1, the regression half (rules icl_landscape_*): train -> LLC per block of checkpoints
# -> probe -> analyze (stages, essential dynamics) -> regression/metrics.json.
# Part 2, the language-model half (rules icl_landscape_lm_*), is in icl_landscape_lm.smk,
# included below; icl_landscape_metrics merges the metrics of both halves.
ICL = paper_rules("icl_landscape")
ICL_FIGURE_NAMES = figure_names(ICL.paper)
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
ICL_FIGURES = [f"{ICL_R}/figures/{name}.png" for name in ICL_FIGURE_NAMES]


rule icl_landscape_train:
    output:
        checkpoints=f"{ICL_R}/train/seed{{seed}}/checkpoints.pt",
        history=f"{ICL_R}/train/seed{{seed}}/history.csv",
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
            outputs=["checkpoints", "history"],
        )


rule icl_landscape_llc:
    input:
        checkpoints=rules.icl_landscape_train.output.checkpoints,
    output:
        llc=f"{ICL_R}/llc/seed{{seed}}/block{{block}}.csv",
        traces=f"{ICL_R}/llc/seed{{seed}}/block{{block}}_traces.npy",
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
            "--opt seed={wildcards.seed} --opt block={wildcards.block}",
            inputs=["checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_probe:
    input:
        checkpoints=rules.icl_landscape_train.output.checkpoints,
    output:
        probe=f"{ICL_R}/probe/seed{{seed}}/probe.csv",
        outputs=f"{ICL_R}/probe/seed{{seed}}/outputs.npy",
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
            "--opt seed={wildcards.seed}",
            inputs=["checkpoints"],
            outputs=["probe", "outputs"],
        )


rule icl_landscape_analyze:
    input:
        # in the config's seed order (llc: every block of a seed in turn); the step pairs
        # them with the seeds by position
        llc=expand(rules.icl_landscape_llc.output.llc, seed=ICL_SEEDS, block=ICL_BLOCKS),
        probe=expand(rules.icl_landscape_probe.output.probe, seed=ICL_SEEDS),
        outputs=expand(rules.icl_landscape_probe.output.outputs, seed=ICL_SEEDS),
    output:
        metrics=f"{ICL_R}/metrics.json",
        baselines=f"{ICL_R}/baselines.csv",
        tables=expand(f"{ICL_R}/seed{{seed}}/checkpoints.csv", seed=ICL_SEEDS),
        fits=expand(f"{ICL_R}/seed{{seed}}/llc_fit.csv", seed=ICL_SEEDS),
        ed=expand(f"{ICL_R}/seed{{seed}}/essential_dynamics.csv", seed=ICL_SEEDS),
        stages=expand(f"{ICL_R}/seed{{seed}}/stages.json", seed=ICL_SEEDS),
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
        ICL.step(
            "analyze",
            ICL_R,
            inputs=["llc", "probe", "outputs"],
            outputs=["metrics", "baselines", "tables", "fits", "ed", "stages"],
        )


# the figures of the first seed
rule icl_landscape_figures:
    input:
        table=rules.icl_landscape_analyze.output.tables[0],
        fit=rules.icl_landscape_analyze.output.fits[0],
        ed=rules.icl_landscape_analyze.output.ed[0],
        stages=rules.icl_landscape_analyze.output.stages[0],
        baselines=rules.icl_landscape_analyze.output.baselines,
        llc=expand(
            rules.icl_landscape_llc.output.llc, seed=ICL_SEEDS[0], block=ICL_BLOCKS
        ),
        llc_traces=expand(
            rules.icl_landscape_llc.output.traces, seed=ICL_SEEDS[0], block=ICL_BLOCKS
        ),
    output:
        [report_figure(ICL.paper, path, part="regression") for path in ICL_FIGURES],
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
        reads=ICL.reads(),
    shell:
        ICL.step(
            "figures",
            f"{ICL_R}/figures",
            inputs=["table", "fit", "ed", "stages", "baselines", "llc", "llc_traces"],
        )


include: "icl_landscape_lm.smk"


rule icl_landscape_metrics:
    input:
        parts=[
            rules.icl_landscape_analyze.output.metrics,
            rules.icl_landscape_lm_analyze.output.metrics,
            rules.icl_landscape_lm_heads.output.metrics,
        ],
    output:
        metrics=f"{ICL.out}/metrics.json",
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
        ICL.step("metrics", ICL.out, inputs=["parts"], outputs=["metrics"])


FIGURES[ICL.paper] = ICL_FIGURES + ICL_LM_FIGURES


rule icl_landscape:
    input:
        f"{ICL.out}/report.md",
