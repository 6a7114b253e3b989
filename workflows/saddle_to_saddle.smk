# Jacot et al. 2021: saddle-to-saddle dynamics of deep linear networks.
# train (one job per depth) + saxe + llc (one job per architecture) -> analyze -> figures.
S2S = PAPER_CONFIG["saddle_to_saddle"]
S2S_P = f"{R}/saddle_to_saddle"
S2S_DEPTHS = [spec["depth"] for spec in S2S["depths"]]
S2S_ARCHS = list(S2S["llc"]["architectures"])
S2S_FIGURES = ["loss_curves", "staircase", "escape_times", "ntk_contrast", "saxe", "llc"]


rule saddle_to_saddle_train:
    output:
        f"{S2S_P}/train/L{{depth}}/history.npz",
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
        step("saddle_to_saddle", "train", f"{S2S_P}/train/L{{wildcards.depth}}", "--opt depth={wildcards.depth}")


rule saddle_to_saddle_saxe:
    output:
        f"{S2S_P}/saxe/saxe.csv",
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
        step("saddle_to_saddle", "saxe", f"{S2S_P}/saxe")


rule saddle_to_saddle_llc:
    output:
        f"{S2S_P}/llc/{{arch}}/llc.csv",
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
        step("saddle_to_saddle", "llc", f"{S2S_P}/llc/{{wildcards.arch}}", "--opt arch={wildcards.arch}")


rule saddle_to_saddle_analyze:
    input:
        expand(f"{S2S_P}/train/L{{depth}}/history.npz", depth=S2S_DEPTHS),
        expand(f"{S2S_P}/llc/{{arch}}/llc.csv", arch=S2S_ARCHS),
        f"{S2S_P}/saxe/saxe.csv",
    output:
        metrics=f"{S2S_P}/metrics.json",
        plateaus=f"{S2S_P}/plateaus.csv",
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
        step("saddle_to_saddle", "analyze", S2S_P)


rule saddle_to_saddle_figures:
    input:
        expand(f"{S2S_P}/train/L{{depth}}/history.npz", depth=S2S_DEPTHS),
        expand(f"{S2S_P}/llc/{{arch}}/llc.csv", arch=S2S_ARCHS),
        f"{S2S_P}/saxe/saxe.csv",
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
        step("saddle_to_saddle", "figures", f"{S2S_P}/figures")


FIGURES["saddle_to_saddle"] = [f"{S2S_P}/figures/{name}.png" for name in S2S_FIGURES]


rule saddle_to_saddle:
    input:
        f"{S2S_P}/report.md",
