# Furman & Lau 2024: LLC estimates of random deep linear networks vs Aoyagi's exact lambda.
# One job per architecture index (spreads over cores or SLURM nodes); collect joins them.
LAS = paper_rules("llc_at_scale")
LAS_FIGURE_NAMES = figure_names(LAS.paper)
LAS_INDICES = range(sum(family["count"] for family in LAS.cfg["families"]))


rule llc_at_scale_estimate:
    output:
        result=f"{LAS.out}/arch/{{index}}/result.json",
        traces=f"{LAS.out}/arch/{{index}}/traces.npz",
    log:
        LAS.log("estimate_{index}"),
    benchmark:
        LAS.benchmark("estimate_{index}")
    wildcard_constraints:
        index=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=LAS.reads("families", "llc", "rank_cut_prob", "seed", "sgd"),
    shell:
        LAS.step(
            "estimate",
            f"{LAS.out}/arch/{{wildcards.index}}",
            "--opt index={wildcards.index}",
            outputs=["result", "traces"],
        )


rule llc_at_scale_rescaling:
    output:
        metrics=f"{LAS.out}/rescaling/metrics.json",
    log:
        LAS.log("rescaling"),
    benchmark:
        LAS.benchmark("rescaling")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=LAS.reads("rescaling", "llc", "seed"),
    shell:
        LAS.step("rescaling", f"{LAS.out}/rescaling", outputs=["metrics"])


rule llc_at_scale_collect:
    input:
        result=expand(rules.llc_at_scale_estimate.output.result, index=LAS_INDICES),
        rescaling=rules.llc_at_scale_rescaling.output.metrics,
    output:
        metrics=f"{LAS.out}/metrics.json",
        table=f"{LAS.out}/table.csv",
    log:
        LAS.log("collect"),
    benchmark:
        LAS.benchmark("collect")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=LAS.reads("families"),
    shell:
        LAS.step(
            "collect",
            LAS.out,
            inputs=["result", "rescaling"],
            outputs=["metrics", "table"],
        )


LAS_FIGURES = [f"{LAS.out}/figures/{name}.png" for name in LAS_FIGURE_NAMES]


rule llc_at_scale_figures:
    input:
        table=rules.llc_at_scale_collect.output.table,
        # in index order, as the table's rows
        traces=expand(rules.llc_at_scale_estimate.output.traces, index=LAS_INDICES),
    output:
        [report_figure(LAS.paper, path) for path in LAS_FIGURES],
    log:
        LAS.log("figures"),
    benchmark:
        LAS.benchmark("figures")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=LAS.reads(),
    shell:
        LAS.step("figures", f"{LAS.out}/figures", inputs=["table", "traces"])


FIGURES[LAS.paper] = LAS_FIGURES


rule llc_at_scale:
    input:
        f"{LAS.out}/report.md",
