# Jacot et al. 2021: saddle-to-saddle dynamics of deep linear networks.
# train (one job per depth) + saxe + llc (one job per architecture) + structure + width_sweep
# -> analyze -> figures.
S2S = paper_rules("saddle_to_saddle")
S2S_FIGURES = figure_names(S2S.paper)
S2S_DEPTHS = [spec["depth"] for spec in S2S.cfg["depths"]]
S2S_ARCHS = list(S2S.cfg["llc"]["architectures"])


rule saddle_to_saddle_train:
    output:
        history=f"{S2S.out}/train/L{{depth}}/history.npz",
    log:
        S2S.log("train_L{depth}"),
    benchmark:
        S2S.benchmark("train_L{depth}")
    wildcard_constraints:
        depth="|".join(str(d) for d in S2S_DEPTHS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=S2S.reads(
            "checkpoint_every",
            "depths",
            "log_points_per_decade",
            "num_seeds",
            "seed",
            "target_diag",
        ),
    shell:
        S2S.step(
            "train",
            f"{S2S.out}/train/L{{wildcards.depth}}",
            "--opt depth={wildcards.depth}",
            outputs=["history"],
        )


rule saddle_to_saddle_saxe:
    output:
        saxe=f"{S2S.out}/saxe/saxe.csv",
    log:
        S2S.log("saxe"),
    benchmark:
        S2S.benchmark("saxe")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        reads=S2S.reads("saxe", "seed", "target_diag"),
    shell:
        S2S.step("saxe", f"{S2S.out}/saxe", outputs=["saxe"])


rule saddle_to_saddle_llc:
    output:
        llc=f"{S2S.out}/llc/{{arch}}/llc.csv",
        history=f"{S2S.out}/llc/{{arch}}/history.npz",
        traces=f"{S2S.out}/llc/{{arch}}/traces.npy",
    log:
        S2S.log("llc_{arch}"),
    benchmark:
        S2S.benchmark("llc_{arch}")
    wildcard_constraints:
        arch="|".join(S2S_ARCHS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=S2S.reads(
            "checkpoint_every",
            "llc",
            "log_points_per_decade",
            "plateau",
            "rank_rtol",
            "seed",
        ),
    shell:
        S2S.step(
            "llc",
            f"{S2S.out}/llc/{{wildcards.arch}}",
            "--opt arch={wildcards.arch}",
            outputs=["llc", "history", "traces"],
        )


rule saddle_to_saddle_structure:
    output:
        structure=f"{S2S.out}/structure/structure.csv",
    log:
        S2S.log("structure"),
    benchmark:
        S2S.benchmark("structure")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        reads=S2S.reads(
            "llc.dim",
            "llc.target_singular_values",
            "log_points_per_decade",
            "num_seeds",
            "plateau",
            "rank_rtol",
            "seed",
            "structure",
        ),
    shell:
        S2S.step("structure", f"{S2S.out}/structure", outputs=["structure"])


rule saddle_to_saddle_width_sweep:
    output:
        width_sweep=f"{S2S.out}/width_sweep/width_sweep.csv",
    log:
        S2S.log("width_sweep"),
    benchmark:
        S2S.benchmark("width_sweep")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=S2S.reads(
            "log_points_per_decade",
            "num_seeds",
            "plateau",
            "seed",
            "target_diag",
            "width_sweep",
        ),
    shell:
        S2S.step("width_sweep", f"{S2S.out}/width_sweep", outputs=["width_sweep"])


rule saddle_to_saddle_analyze:
    input:
        # in the config's order of depths and architectures: the step pairs them by position
        history=expand(rules.saddle_to_saddle_train.output.history, depth=S2S_DEPTHS),
        llc=expand(rules.saddle_to_saddle_llc.output.llc, arch=S2S_ARCHS),
        saxe=rules.saddle_to_saddle_saxe.output.saxe,
        structure=rules.saddle_to_saddle_structure.output.structure,
        width_sweep=rules.saddle_to_saddle_width_sweep.output.width_sweep,
    output:
        metrics=f"{S2S.out}/metrics.json",
        plateaus=f"{S2S.out}/plateaus.csv",
        plateau_counts=f"{S2S.out}/plateau_counts.csv",
        escape_fits=f"{S2S.out}/escape_fits.csv",
    log:
        S2S.log("analyze"),
    benchmark:
        S2S.benchmark("analyze")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=S2S.reads(
            "depths",
            "escape_fit_min_gamma",
            "llc.architectures",
            "llc.target_singular_values",
            "plateau",
            "rank_rtol",
            "target_diag",
        ),
    shell:
        S2S.step(
            "analyze",
            S2S.out,
            inputs=["history", "llc", "saxe", "structure", "width_sweep"],
            outputs=["metrics", "plateaus", "plateau_counts", "escape_fits"],
        )


rule saddle_to_saddle_figures:
    input:
        history=rules.saddle_to_saddle_analyze.input.history,
        llc=rules.saddle_to_saddle_analyze.input.llc,
        llc_history=expand(rules.saddle_to_saddle_llc.output.history, arch=S2S_ARCHS),
        llc_traces=expand(rules.saddle_to_saddle_llc.output.traces, arch=S2S_ARCHS),
        saxe=rules.saddle_to_saddle_saxe.output.saxe,
        structure=rules.saddle_to_saddle_structure.output.structure,
        width_sweep=rules.saddle_to_saddle_width_sweep.output.width_sweep,
    output:
        [
            report_figure(S2S.paper, f"{S2S.out}/figures/{name}.png")
            for name in S2S_FIGURES
        ],
    log:
        S2S.log("figures"),
    benchmark:
        S2S.benchmark("figures")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=S2S.reads(
            "depths",
            "escape_fit_min_gamma",
            "llc.architectures",
            "plateau",
            "target_diag",
        ),
    shell:
        S2S.step(
            "figures",
            f"{S2S.out}/figures",
            inputs=[
                "history",
                "llc",
                "llc_history",
                "llc_traces",
                "saxe",
                "structure",
                "width_sweep",
            ],
        )


FIGURES[S2S.paper] = [f"{S2S.out}/figures/{name}.png" for name in S2S_FIGURES]


rule saddle_to_saddle:
    input:
        f"{S2S.out}/report.md",
