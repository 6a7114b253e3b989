# Jacot et al. 2021: saddle-to-saddle dynamics of deep linear networks.
# train (one job per depth) + saxe + llc (one job per architecture) -> analyze -> figures.
from sltrepro.papers.saddle_to_saddle.figures import FIGURES as S2S_FIGURES

S2S = PAPER_CONFIG["saddle_to_saddle"]
S2S_P = f"{R}/saddle_to_saddle"
S2S_DEPTHS = [spec["depth"] for spec in S2S["depths"]]
S2S_ARCHS = list(S2S["llc"]["architectures"])


rule saddle_to_saddle_train:
    output:
        history=f"{S2S_P}/train/L{{depth}}/history.npz",
    log:
        paper_log("saddle_to_saddle", "train_L{depth}"),
    benchmark:
        f"{S2S_P}/benchmarks/train_L{{depth}}.tsv"
    wildcard_constraints:
        depth="|".join(str(d) for d in S2S_DEPTHS),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    params:
        reads=reads("saddle_to_saddle", "checkpoint_every", "depths", "log_points_per_decade", "num_seeds", "seed", "target_diag"),
    shell:
        step(
            "saddle_to_saddle",
            "train",
            f"{S2S_P}/train/L{{wildcards.depth}}",
            "--opt depth={wildcards.depth}",
            outputs=["history"],
        )


rule saddle_to_saddle_saxe:
    output:
        saxe=f"{S2S_P}/saxe/saxe.csv",
    log:
        paper_log("saddle_to_saddle", "saxe"),
    benchmark:
        f"{S2S_P}/benchmarks/saxe.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    params:
        reads=reads("saddle_to_saddle", "saxe", "seed", "target_diag"),
    shell:
        step("saddle_to_saddle", "saxe", f"{S2S_P}/saxe", outputs=["saxe"])


rule saddle_to_saddle_llc:
    output:
        llc=f"{S2S_P}/llc/{{arch}}/llc.csv",
        history=f"{S2S_P}/llc/{{arch}}/history.npz",
    log:
        paper_log("saddle_to_saddle", "llc_{arch}"),
    benchmark:
        f"{S2S_P}/benchmarks/llc_{{arch}}.tsv"
    wildcard_constraints:
        arch="|".join(S2S_ARCHS),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    params:
        reads=reads("saddle_to_saddle", "checkpoint_every", "llc", "log_points_per_decade", "plateau", "rank_rtol", "seed"),
    shell:
        step(
            "saddle_to_saddle",
            "llc",
            f"{S2S_P}/llc/{{wildcards.arch}}",
            "--opt arch={wildcards.arch}",
            outputs=["llc", "history"],
        )


rule saddle_to_saddle_analyze:
    input:
        # in the config's order of depths and architectures: the step pairs them by position
        history=expand(rules.saddle_to_saddle_train.output.history, depth=S2S_DEPTHS),
        llc=expand(rules.saddle_to_saddle_llc.output.llc, arch=S2S_ARCHS),
        saxe=rules.saddle_to_saddle_saxe.output.saxe,
    output:
        metrics=f"{S2S_P}/metrics.json",
        plateaus=f"{S2S_P}/plateaus.csv",
        plateau_counts=f"{S2S_P}/plateau_counts.csv",
        escape_fits=f"{S2S_P}/escape_fits.csv",
    log:
        paper_log("saddle_to_saddle", "analyze"),
    benchmark:
        f"{S2S_P}/benchmarks/analyze.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("saddle_to_saddle", "depths", "escape_fit_min_gamma", "llc.architectures", "plateau", "rank_rtol", "target_diag"),
    shell:
        step(
            "saddle_to_saddle",
            "analyze",
            S2S_P,
            inputs=["history", "llc", "saxe"],
            outputs=["metrics", "plateaus", "plateau_counts", "escape_fits"],
        )


rule saddle_to_saddle_figures:
    input:
        history=rules.saddle_to_saddle_analyze.input.history,
        llc=rules.saddle_to_saddle_analyze.input.llc,
        llc_history=expand(rules.saddle_to_saddle_llc.output.history, arch=S2S_ARCHS),
        saxe=rules.saddle_to_saddle_saxe.output.saxe,
    output:
        [report_figure("saddle_to_saddle", f"{S2S_P}/figures/{name}.png") for name in S2S_FIGURES],
    log:
        paper_log("saddle_to_saddle", "figures"),
    benchmark:
        f"{S2S_P}/benchmarks/figures.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads(
            "saddle_to_saddle",
            "depths",
            "escape_fit_min_gamma",
            "llc.architectures",
            "plateau",
            "target_diag",
        ),
    shell:
        step(
            "saddle_to_saddle",
            "figures",
            f"{S2S_P}/figures",
            inputs=["history", "llc", "llc_history", "saxe"],
        )


FIGURES["saddle_to_saddle"] = [f"{S2S_P}/figures/{name}.png" for name in S2S_FIGURES]


rule saddle_to_saddle:
    input:
        f"{S2S_P}/report.md",
