# Furman & Lau 2024: LLC estimates of random deep linear networks vs Aoyagi's exact lambda.
# One job per architecture index (spreads over cores or SLURM nodes); collect joins them.
from sltrepro.papers.llc_at_scale.figures import FIGURES as LAS_FIGURE_NAMES
from sltrepro.papers.llc_at_scale.pipeline import num_architectures

LAS_CFG = PAPER_CONFIG["llc_at_scale"]
LAS = f"{R}/llc_at_scale"
LAS_INDICES = range(num_architectures(LAS_CFG))


rule llc_at_scale_estimate:
    output:
        result=f"{LAS}/arch/{{index}}/result.json",
    log:
        paper_log("llc_at_scale", "estimate_{index}"),
    benchmark:
        f"{LAS}/benchmarks/estimate_{{index}}.tsv"
    conda:
        ENV
    wildcard_constraints:
        index=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=reads("llc_at_scale", "families", "llc", "rank_cut_prob", "seed", "sgd"),
    shell:
        step(
            "llc_at_scale",
            "estimate",
            f"{LAS}/arch/{{wildcards.index}}",
            "--opt index={wildcards.index}",
            outputs=["result"],
        )


rule llc_at_scale_collect:
    input:
        result=expand(rules.llc_at_scale_estimate.output.result, index=LAS_INDICES),
    output:
        metrics=f"{LAS}/metrics.json",
        table=f"{LAS}/table.csv",
    log:
        paper_log("llc_at_scale", "collect"),
    benchmark:
        f"{LAS}/benchmarks/collect.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=reads("llc_at_scale", "families"),
    shell:
        step("llc_at_scale", "collect", LAS, inputs=["result"], outputs=["metrics", "table"])


LAS_FIGURES = [f"{LAS}/figures/{name}.png" for name in LAS_FIGURE_NAMES]


rule llc_at_scale_figures:
    input:
        table=rules.llc_at_scale_collect.output.table,
    output:
        [report_figure("llc_at_scale", path) for path in LAS_FIGURES],
    log:
        paper_log("llc_at_scale", "figures"),
    benchmark:
        f"{LAS}/benchmarks/figures.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=reads("llc_at_scale"),
    shell:
        step("llc_at_scale", "figures", f"{LAS}/figures", inputs=["table"])


FIGURES["llc_at_scale"] = LAS_FIGURES


rule llc_at_scale:
    input:
        f"{LAS}/report.md",
