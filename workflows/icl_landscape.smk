# Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning".
# Part 1, the regression half (rules icl_landscape_*): train -> LLC per block of checkpoints
# -> probe -> analyze (stages, essential dynamics) -> regression/metrics.json. A training run
# is named seedN, or lr_control_seedN for the learning-rate control (issue 18 §4, when the
# profile's regression block has `lr_control:`): the first seed again with the schedule's
# peak moved, compared with the main run by icl_landscape_lr_control. The first seed's main
# run is the reference, with an LLC at every `reference_checkpoint_every`-th checkpoint;
# the replicates (later seeds, the control) at every `replicate_checkpoint_every`-th
# (issue 18 §3).
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
ICL_MAIN_RUNS = [f"seed{seed}" for seed in ICL_SEEDS]
ICL_LR_CONTROL = "lr_control" in ICL_REG
ICL_CONTROL_RUN = f"lr_control_seed{ICL_SEEDS[0]}"
ICL_RUN = r"(lr_control_)?seed\d+"
# the control also reads its schedule
ICL_CONTROL_KEYS = ["regression.lr_control"]
# an LLC job reads both checkpoint grids (the replicates' must lie inside the reference's)
ICL_GRID_KEYS = [
    "regression.reference_checkpoint_every",
    "regression.replicate_checkpoint_every",
]


rule icl_landscape_train:
    output:
        checkpoints=f"{ICL_R}/train/{{run}}/checkpoints.pt",
        history=f"{ICL_R}/train/{{run}}/history.csv",
    log:
        ICL.log("train_{run}"),
    benchmark:
        ICL.benchmark("train_{run}")
    wildcard_constraints:
        run=ICL_RUN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    params:
        reads=lambda w: ICL.reads(
            *ICL_TRAIN_KEYS,
            *(ICL_CONTROL_KEYS if w.run.startswith("lr_control_") else []),
        ),
    shell:
        ICL.step(
            "train",
            f"{ICL_R}/train/{{wildcards.run}}",
            "--opt run={wildcards.run}",
            outputs=["checkpoints", "history"],
        )


rule icl_landscape_llc:
    input:
        checkpoints=rules.icl_landscape_train.output.checkpoints,
    output:
        llc=f"{ICL_R}/llc/{{run}}/block{{block}}.csv",
        traces=f"{ICL_R}/llc/{{run}}/block{{block}}_traces.npy",
    log:
        ICL.log("llc_{run}_block{block}"),
    benchmark:
        ICL.benchmark("llc_{run}_block{block}")
    wildcard_constraints:
        run=ICL_RUN,
        block=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        reads=ICL.reads(*ICL_TRAIN_KEYS, "regression.llc", *ICL_GRID_KEYS),
        replicate=lambda w: int(w.run != ICL_MAIN_RUNS[0]),
    shell:
        ICL.step(
            "llc",
            f"{ICL_R}/llc/{{wildcards.run}}",
            "--opt run={wildcards.run} --opt block={wildcards.block}"
            " --opt replicate={params.replicate}",
            inputs=["checkpoints"],
            outputs=["llc", "traces"],
        )


rule icl_landscape_probe:
    input:
        checkpoints=rules.icl_landscape_train.output.checkpoints,
    output:
        probe=f"{ICL_R}/probe/{{run}}/probe.csv",
        outputs=f"{ICL_R}/probe/{{run}}/outputs.npy",
    log:
        ICL.log("probe_{run}"),
    benchmark:
        ICL.benchmark("probe_{run}")
    wildcard_constraints:
        run=ICL_RUN,
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
            f"{ICL_R}/probe/{{wildcards.run}}",
            "--opt run={wildcards.run}",
            inputs=["checkpoints"],
            outputs=["probe", "outputs"],
        )


rule icl_landscape_analyze:
    input:
        # in the config's seed order (llc: every block of a seed in turn); the step pairs
        # them with the seeds by position
        llc=expand(
            rules.icl_landscape_llc.output.llc,
            run=ICL_MAIN_RUNS,
            block=ICL_BLOCKS,
        ),
        probe=expand(rules.icl_landscape_probe.output.probe, run=ICL_MAIN_RUNS),
        outputs=expand(
            rules.icl_landscape_probe.output.outputs,
            run=ICL_MAIN_RUNS,
        ),
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


# the learning-rate control against the first seed's main run
rule icl_landscape_lr_control:
    input:
        main_table=rules.icl_landscape_analyze.output.tables[0],
        main_stages=rules.icl_landscape_analyze.output.stages[0],
        llc=expand(
            rules.icl_landscape_llc.output.llc, run=ICL_CONTROL_RUN, block=ICL_BLOCKS
        ),
        probe=expand(rules.icl_landscape_probe.output.probe, run=ICL_CONTROL_RUN),
    output:
        metrics=f"{ICL_R}/lr_control/metrics.json",
        table=f"{ICL_R}/lr_control/checkpoints.csv",
        fit=f"{ICL_R}/lr_control/llc_fit.csv",
        stages=f"{ICL_R}/lr_control/stages.json",
    log:
        ICL.log("lr_control"),
    benchmark:
        ICL.benchmark("lr_control")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=ICL.reads("regression"),
    shell:
        ICL.step(
            "lr_control",
            f"{ICL_R}/lr_control",
            inputs=["main_table", "main_stages", "llc", "probe"],
            outputs=["metrics", "table", "fit", "stages"],
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
            rules.icl_landscape_llc.output.llc,
            run=ICL_MAIN_RUNS[0],
            block=ICL_BLOCKS,
        ),
        llc_traces=expand(
            rules.icl_landscape_llc.output.traces,
            run=ICL_MAIN_RUNS[0],
            block=ICL_BLOCKS,
        ),
        # the learning-rate control's LLC curve and fit, drawn beside the main run's
        control=(
            [f"{ICL_R}/lr_control/checkpoints.csv", f"{ICL_R}/lr_control/llc_fit.csv"]
            if ICL_LR_CONTROL
            else []
        ),
        # the later seeds' LLC curves, drawn beside the first seed's
        replicate_tables=rules.icl_landscape_analyze.output.tables[1:],
        replicate_fits=rules.icl_landscape_analyze.output.fits[1:],
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
        reads=ICL.reads("regression.seeds"),
    shell:
        ICL.step(
            "figures",
            f"{ICL_R}/figures",
            inputs=["table", "fit", "ed", "stages", "baselines", "llc", "llc_traces"]
            + (["control"] if ICL_LR_CONTROL else [])
            + (["replicate_tables", "replicate_fits"] if len(ICL_SEEDS) > 1 else []),
        )


include: "icl_landscape_lm.smk"


rule icl_landscape_metrics:
    input:
        parts=[
            rules.icl_landscape_analyze.output.metrics,
            rules.icl_landscape_lm_seeds.output.metrics,
            rules.icl_landscape_lm_heads.output.metrics,
            *(
                [rules.icl_landscape_lr_control.output.metrics]
                if ICL_LR_CONTROL
                else []
            ),
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
