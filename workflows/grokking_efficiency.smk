# Varma et al. 2023, "Explaining grokking through circuit efficiency" (papers/grokking_efficiency).
# Every training rule trains a whole sweep (seeds x sizes) as one vectorised stack, on one
# thread: two such rules side by side use two cores better than one rule on two threads.
# Priorities: the claimed runs first when cores are scarce, the semi-grokking search last.
GE = paper_rules("grokking_efficiency")
GE_FIGURE_NAMES = figure_names(GE.paper)
GE_WDS = [f"{wd:g}" for wd in GE.cfg["ungrok"]["weight_decays"]]


rule grokking_efficiency_grok:
    output:
        history=f"{GE.out}/grok/history.csv",
        snapshots=f"{GE.out}/grok/snapshots.pt",
    log:
        GE.log("grok"),
    benchmark:
        GE.benchmark("grok")
    priority: 30
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        reads=GE.reads(
            "checkpoint_every",
            "grok",
            "log_points",
            "model",
            "operation",
            "optimizer",
            "p",
            "seed",
        ),
    shell:
        GE.step("grok", f"{GE.out}/grok", outputs=["history", "snapshots"])


rule grokking_efficiency_llc:
    input:
        snapshots=rules.grokking_efficiency_grok.output.snapshots,
    output:
        llc=f"{GE.out}/llc/llc.csv",
        traces=f"{GE.out}/llc/traces.npy",
    log:
        GE.log("llc"),
    benchmark:
        GE.benchmark("llc")
    priority: 25
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        reads=GE.reads("llc", "operation", "p", "seed"),
    shell:
        GE.step("llc", f"{GE.out}/llc", inputs=["snapshots"], outputs=["llc", "traces"])


rule grokking_efficiency_pretrain:
    output:
        params=f"{GE.out}/pretrain/params.pt",
        history=f"{GE.out}/pretrain/history.csv",
    log:
        GE.log("pretrain"),
    benchmark:
        GE.benchmark("pretrain")
    priority: 30
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        reads=GE.reads(
            "checkpoint_every",
            "efficiency.seeds",
            "log_points",
            "model",
            "operation",
            "optimizer",
            "p",
            "seed",
            "ungrok",
        ),
    shell:
        GE.step("pretrain", f"{GE.out}/pretrain", outputs=["params", "history"])


rule grokking_efficiency_memorise:
    output:
        history=f"{GE.out}/efficiency/memorise/history.csv",
        final=f"{GE.out}/efficiency/memorise/final.csv",
    log:
        GE.log("efficiency_memorise"),
    benchmark:
        GE.benchmark("efficiency_memorise")
    priority: 10
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        reads=GE.reads(
            "checkpoint_every",
            "efficiency.memorise_sizes",
            "efficiency.seeds",
            "efficiency.steps",
            "efficiency.weight_decay",
            "log_points",
            "model",
            "operation",
            "optimizer",
            "p",
            "seed",
        ),
    shell:
        GE.step(
            "memorise", f"{GE.out}/efficiency/memorise", outputs=["history", "final"]
        )


rule grokking_efficiency_generalise:
    input:
        params=rules.grokking_efficiency_pretrain.output.params,
    output:
        history=f"{GE.out}/efficiency/generalise/history.csv",
        final=f"{GE.out}/efficiency/generalise/final.csv",
    log:
        GE.log("efficiency_generalise"),
    benchmark:
        GE.benchmark("efficiency_generalise")
    priority: 10
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        reads=GE.reads(
            "checkpoint_every",
            "efficiency.generalise_sizes",
            "efficiency.generalise_steps",
            "efficiency.seeds",
            "efficiency.weight_decay",
            "log_points",
            "operation",
            "optimizer",
            "p",
        ),
    shell:
        GE.step(
            "generalise",
            f"{GE.out}/efficiency/generalise",
            inputs=["params"],
            outputs=["history", "final"],
        )


rule grokking_efficiency_ungrok:
    input:
        params=rules.grokking_efficiency_pretrain.output.params,
    output:
        history=f"{GE.out}/ungrok/wd{{wd}}/history.csv",
        final=f"{GE.out}/ungrok/wd{{wd}}/final.csv",
    log:
        GE.log("ungrok_wd{wd}"),
    benchmark:
        GE.benchmark("ungrok_wd{wd}")
    wildcard_constraints:
        wd="|".join(GE_WDS),
    priority: 20
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=480,
    params:
        reads=GE.reads(
            "checkpoint_every", "log_points", "operation", "optimizer", "p", "ungrok"
        ),
    shell:
        GE.step(
            "ungrok",
            f"{GE.out}/ungrok/wd{{wildcards.wd}}",
            "--opt wd={wildcards.wd}",
            inputs=["params"],
            outputs=["history", "final"],
        )


rule grokking_efficiency_semigrok:
    output:
        history=f"{GE.out}/semigrok/history.csv",
    log:
        GE.log("semigrok"),
    benchmark:
        GE.benchmark("semigrok")
    priority: 0
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    params:
        reads=GE.reads(
            "checkpoint_every",
            "log_points",
            "model",
            "operation",
            "optimizer",
            "p",
            "seed",
            "semigrok",
        ),
    shell:
        GE.step("semigrok", f"{GE.out}/semigrok", outputs=["history"])


rule grokking_efficiency_analyze:
    input:
        grok_history=rules.grokking_efficiency_grok.output.history,
        llc=rules.grokking_efficiency_llc.output.llc,
        pretrain_history=rules.grokking_efficiency_pretrain.output.history,
        semigrok=rules.grokking_efficiency_semigrok.output.history,
        # in the order memorise, generalise and the config's weight decays: the step pairs
        # them by position
        efficiency=[
            rules.grokking_efficiency_memorise.output.final,
            rules.grokking_efficiency_generalise.output.final,
        ],
        ungrok=expand(rules.grokking_efficiency_ungrok.output.final, wd=GE_WDS),
    output:
        metrics=f"{GE.out}/metrics.json",
    log:
        GE.log("analyze"),
    benchmark:
        GE.benchmark("analyze")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=GE.reads("seed", "ungrok"),
    shell:
        GE.step(
            "analyze",
            GE.out,
            inputs=[
                "grok_history",
                "llc",
                "pretrain_history",
                "semigrok",
                "efficiency",
                "ungrok",
            ],
            outputs=["metrics"],
        )


GE_FIGURES = [f"{GE.out}/figures/{name}.png" for name in GE_FIGURE_NAMES]


rule grokking_efficiency_figures:
    input:
        grok_history=rules.grokking_efficiency_analyze.input.grok_history,
        llc=rules.grokking_efficiency_analyze.input.llc,
        llc_traces=rules.grokking_efficiency_llc.output.traces,
        semigrok=rules.grokking_efficiency_analyze.input.semigrok,
        efficiency=rules.grokking_efficiency_analyze.input.efficiency,
        ungrok=rules.grokking_efficiency_analyze.input.ungrok,
    output:
        [report_figure(GE.paper, path) for path in GE_FIGURES],
    log:
        GE.log("figures"),
    benchmark:
        GE.benchmark("figures")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=GE.reads("ungrok"),
    shell:
        GE.step(
            "figures",
            f"{GE.out}/figures",
            inputs=[
                "grok_history",
                "llc",
                "llc_traces",
                "semigrok",
                "efficiency",
                "ungrok",
            ],
        )


FIGURES[GE.paper] = GE_FIGURES


rule grokking_efficiency:
    input:
        f"{GE.out}/report.md",
