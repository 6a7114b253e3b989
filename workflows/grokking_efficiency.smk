# Varma et al. 2023, "Explaining grokking through circuit efficiency" (papers/grokking_efficiency).
# Every training rule trains a whole sweep (seeds x sizes) as one vectorised stack, on one
# thread: two such rules side by side use two cores better than one rule on two threads.
# Priorities: the claimed runs first when cores are scarce, the semi-grokking search last.
CFG_GE = PAPER_CONFIG["grokking_efficiency"]
P_GE = f"{R}/grokking_efficiency"
GE_WDS = [f"{wd:g}" for wd in CFG_GE["ungrok"]["weight_decays"]]
GE_KINDS = ["memorise", "generalise"]


rule grokking_efficiency_grok:
    priority: 30
    output:
        f"{P_GE}/grok/history.csv",
        f"{P_GE}/grok/snapshots.pt",
    log:
        paper_log("grokking_efficiency", "grok"),
    benchmark:
        f"{P_GE}/benchmarks/grok.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "checkpoint_every", "grok", "log_points", "model", "operation", "optimizer", "p", "seed"),
    shell:
        step("grokking_efficiency", "grok", f"{P_GE}/grok")


rule grokking_efficiency_llc:
    priority: 25
    input:
        f"{P_GE}/grok/snapshots.pt",
    output:
        f"{P_GE}/llc/llc.csv",
    log:
        paper_log("grokking_efficiency", "llc"),
    benchmark:
        f"{P_GE}/benchmarks/llc.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "llc", "operation", "p", "seed"),
    shell:
        step("grokking_efficiency", "llc", f"{P_GE}/llc")


rule grokking_efficiency_efficiency:
    priority: 10
    output:
        f"{P_GE}/efficiency/{{kind}}/final.csv",
    log:
        paper_log("grokking_efficiency", "efficiency_{kind}"),
    benchmark:
        f"{P_GE}/benchmarks/efficiency_{{kind}}.tsv"
    wildcard_constraints:
        kind="|".join(GE_KINDS),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "checkpoint_every", "efficiency", "log_points", "model", "operation", "optimizer", "p", "seed"),
    shell:
        step(
            "grokking_efficiency",
            "efficiency",
            f"{P_GE}/efficiency/{{wildcards.kind}}",
            "--opt kind={wildcards.kind}",
        )


rule grokking_efficiency_pretrain:
    priority: 30
    output:
        f"{P_GE}/pretrain/params.pt",
        f"{P_GE}/pretrain/history.csv",
    log:
        paper_log("grokking_efficiency", "pretrain"),
    benchmark:
        f"{P_GE}/benchmarks/pretrain.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "checkpoint_every", "log_points", "model", "operation", "optimizer", "p", "seed", "ungrok"),
    shell:
        step("grokking_efficiency", "pretrain", f"{P_GE}/pretrain")


rule grokking_efficiency_ungrok:
    priority: 20
    input:
        f"{P_GE}/pretrain/params.pt",
    output:
        f"{P_GE}/ungrok/wd{{wd}}/final.csv",
    log:
        paper_log("grokking_efficiency", "ungrok_wd{wd}"),
    benchmark:
        f"{P_GE}/benchmarks/ungrok_wd{{wd}}.tsv"
    wildcard_constraints:
        wd="|".join(GE_WDS),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=480,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "checkpoint_every", "log_points", "operation", "optimizer", "p", "ungrok"),
    shell:
        step(
            "grokking_efficiency",
            "ungrok",
            f"{P_GE}/ungrok/wd{{wildcards.wd}}",
            "--opt wd={wildcards.wd}",
        )


rule grokking_efficiency_semigrok:
    priority: 0
    output:
        f"{P_GE}/semigrok/history.csv",
    log:
        paper_log("grokking_efficiency", "semigrok"),
    benchmark:
        f"{P_GE}/benchmarks/semigrok.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "checkpoint_every", "log_points", "model", "operation", "optimizer", "p", "seed", "semigrok"),
    shell:
        step("grokking_efficiency", "semigrok", f"{P_GE}/semigrok")


GE_RESULTS = [
    f"{P_GE}/grok/history.csv",
    f"{P_GE}/llc/llc.csv",
    f"{P_GE}/pretrain/history.csv",
    f"{P_GE}/semigrok/history.csv",
    *expand(f"{P_GE}/efficiency/{{kind}}/final.csv", kind=GE_KINDS),
    *expand(f"{P_GE}/ungrok/wd{{wd}}/final.csv", wd=GE_WDS),
]


rule grokking_efficiency_analyze:
    input:
        GE_RESULTS,
    output:
        f"{P_GE}/metrics.json",
    log:
        paper_log("grokking_efficiency", "analyze"),
    benchmark:
        f"{P_GE}/benchmarks/analyze.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "ungrok"),
    shell:
        step("grokking_efficiency", "analyze", P_GE)


GE_FIGURES = [
    f"{P_GE}/figures/{name}.png"
    for name in ("grokking", "efficiency", "ungrokking", "semigrokking")
]


rule grokking_efficiency_figures:
    input:
        GE_RESULTS,
    output:
        [report_figure("grokking_efficiency", path) for path in GE_FIGURES],
    log:
        paper_log("grokking_efficiency", "figures"),
    benchmark:
        f"{P_GE}/benchmarks/figures.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("grokking_efficiency", "ungrok"),
    shell:
        step("grokking_efficiency", "figures", f"{P_GE}/figures")


FIGURES["grokking_efficiency"] = GE_FIGURES


rule grokking_efficiency:
    input:
        f"{P_GE}/report.md",
