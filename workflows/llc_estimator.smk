# Lau et al. 2023: the LLC estimator against known lambda (Table 1, Aoyagi DLN/RRR cases)
# and its step-size x nbeta calibration. One job per model / case; collect joins them.
LE_CFG = PAPER_CONFIG["llc_estimator"]
LE = f"{R}/llc_estimator"
LE_MODELS = [m["name"] for m in LE_CFG["models"]]
LE_CASES = [c["name"] for c in LE_CFG["dln_cases"]]
LE_ESTIMATES = [f"{LE}/normal_crossing/{m}/estimates.json" for m in LE_MODELS] + [
    f"{LE}/dln/{c}/estimates.json" for c in LE_CASES
]
LE_CALIBRATION = [f"{LE}/calibration/calibration.csv", f"{LE}/calibration/calibration.json"]
LE_MALA = [f"{LE}/mala/{c}/reference.json" for c in LE_CFG["mala_reference"]["cases"]]


rule llc_estimator_normal_crossing:
    output:
        f"{LE}/normal_crossing/{{model}}/estimates.json",
    log:
        paper_log("llc_estimator", "normal_crossing_{model}"),
    benchmark:
        f"{LE}/benchmarks/normal_crossing_{{model}}.tsv"
    wildcard_constraints:
        model="|".join(LE_MODELS),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=reads("llc_estimator", "models", "noise_std", "num_samples", "sampler", "seed", "seeds"),
    shell:
        step(
            "llc_estimator",
            "normal_crossing",
            f"{LE}/normal_crossing/{{wildcards.model}}",
            "--opt model={wildcards.model}",
        )


rule llc_estimator_dln:
    output:
        f"{LE}/dln/{{case}}/estimates.json",
    log:
        paper_log("llc_estimator", "dln_{case}"),
    benchmark:
        f"{LE}/benchmarks/dln_{{case}}.tsv"
    wildcard_constraints:
        case="|".join(LE_CASES),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=reads("llc_estimator", "dln_cases", "num_samples", "sampler", "seed", "seeds"),
    shell:
        step("llc_estimator", "dln", f"{LE}/dln/{{wildcards.case}}", "--opt case={wildcards.case}")


rule llc_estimator_mala_reference:
    output:
        f"{LE}/mala/{{case}}/reference.json",
    log:
        paper_log("llc_estimator", "mala_{case}"),
    benchmark:
        f"{LE}/benchmarks/mala_{{case}}.tsv"
    wildcard_constraints:
        case="|".join(LE_CASES),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=reads(
            "llc_estimator",
            "dln_cases",
            "mala_reference",
            "num_samples",
            "sampler.localization",
            "seed",
            "seeds",
        ),
    shell:
        step(
            "llc_estimator",
            "mala_reference",
            f"{LE}/mala/{{wildcards.case}}",
            "--opt case={wildcards.case}",
        )


rule llc_estimator_calibrate:
    output:
        LE_CALIBRATION,
    log:
        paper_log("llc_estimator", "calibrate"),
    benchmark:
        f"{LE}/benchmarks/calibrate.tsv"
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=reads("llc_estimator", "calibration", "dln_cases", "num_samples", "sampler", "seed"),
    shell:
        step("llc_estimator", "calibrate", f"{LE}/calibration")


rule llc_estimator_collect:
    input:
        LE_ESTIMATES + LE_CALIBRATION[1:] + LE_MALA,
    output:
        metrics=f"{LE}/metrics.json",
        table=f"{LE}/table.csv",
        diagnostics=f"{LE}/diagnostics.csv",
    log:
        paper_log("llc_estimator", "collect"),
    benchmark:
        f"{LE}/benchmarks/collect.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=reads("llc_estimator"),
    shell:
        step("llc_estimator", "collect", LE, "--input {input}")


LE_FIGURES = [f"{LE}/figures/{name}.png" for name in ("estimates", "calibration", "traces")]


rule llc_estimator_figures:
    input:
        [f"{LE}/table.csv"] + LE_CALIBRATION + LE_ESTIMATES,
    output:
        [report_figure("llc_estimator", path) for path in LE_FIGURES],
    log:
        paper_log("llc_estimator", "figures"),
    benchmark:
        f"{LE}/benchmarks/figures.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=reads("llc_estimator"),
    shell:
        step("llc_estimator", "figures", f"{LE}/figures", "--input {input}")


FIGURES["llc_estimator"] = LE_FIGURES


rule llc_estimator:
    input:
        f"{LE}/report.md",
