# Lau et al. 2023: the LLC estimator against known lambda (Table 1, Aoyagi DLN/RRR cases)
# and its step-size x nbeta calibration. One job per model / case; collect joins them.
from sltrepro.papers.llc_estimator.figures import FIGURES as LE_FIGURE_NAMES

LE = paper_rules("llc_estimator")
LE_MODELS = [m["name"] for m in LE.cfg["models"]]
LE_CASES = [c["name"] for c in LE.cfg["dln_cases"]]
LE_ESTIMATES = [f"{LE.out}/normal_crossing/{m}/estimates.json" for m in LE_MODELS] + [
    f"{LE.out}/dln/{c}/estimates.json" for c in LE_CASES
]
LE_CALIBRATION = [f"{LE.out}/calibration/calibration.csv", f"{LE.out}/calibration/calibration.json"]
LE_MALA = [f"{LE.out}/mala/{c}/reference.json" for c in LE.cfg["mala_reference"]["cases"]]


rule llc_estimator_normal_crossing:
    output:
        f"{LE.out}/normal_crossing/{{model}}/estimates.json",
    log:
        LE.log("normal_crossing_{model}"),
    benchmark:
        LE.benchmark("normal_crossing_{model}")
    wildcard_constraints:
        model="|".join(LE_MODELS),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=LE.reads("models", "noise_std", "num_samples", "sampler", "seed", "seeds"),
    shell:
        LE.step(
            "normal_crossing",
            f"{LE.out}/normal_crossing/{{wildcards.model}}",
            "--opt model={wildcards.model}",
        )


rule llc_estimator_dln:
    output:
        f"{LE.out}/dln/{{case}}/estimates.json",
    log:
        LE.log("dln_{case}"),
    benchmark:
        LE.benchmark("dln_{case}")
    wildcard_constraints:
        case="|".join(LE_CASES),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=LE.reads("dln_cases", "num_samples", "sampler", "seed", "seeds"),
    shell:
        LE.step("dln", f"{LE.out}/dln/{{wildcards.case}}", "--opt case={wildcards.case}")


rule llc_estimator_mala_reference:
    output:
        f"{LE.out}/mala/{{case}}/reference.json",
    log:
        LE.log("mala_{case}"),
    benchmark:
        LE.benchmark("mala_{case}")
    wildcard_constraints:
        case="|".join(LE_CASES),
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=LE.reads(
            "dln_cases",
            "mala_reference",
            "num_samples",
            "sampler.localization",
            "seed",
            "seeds",
        ),
    shell:
        LE.step(
            "mala_reference",
            f"{LE.out}/mala/{{wildcards.case}}",
            "--opt case={wildcards.case}",
        )


rule llc_estimator_calibrate:
    output:
        LE_CALIBRATION,
    log:
        LE.log("calibrate"),
    benchmark:
        LE.benchmark("calibrate")
    threads: 1
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=LE.reads("calibration", "dln_cases", "num_samples", "sampler", "seed"),
    shell:
        LE.step("calibrate", f"{LE.out}/calibration")


rule llc_estimator_collect:
    input:
        LE_ESTIMATES + LE_CALIBRATION[1:] + LE_MALA,
    output:
        metrics=f"{LE.out}/metrics.json",
        table=f"{LE.out}/table.csv",
        diagnostics=f"{LE.out}/diagnostics.csv",
    log:
        LE.log("collect"),
    benchmark:
        LE.benchmark("collect")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=LE.reads(),
    shell:
        LE.step("collect", LE.out, "--input {input}")


LE_FIGURES = [f"{LE.out}/figures/{name}.png" for name in LE_FIGURE_NAMES]


rule llc_estimator_figures:
    input:
        [f"{LE.out}/table.csv"] + LE_CALIBRATION + LE_ESTIMATES,
    output:
        [report_figure(LE.paper, path) for path in LE_FIGURES],
    log:
        LE.log("figures"),
    benchmark:
        LE.benchmark("figures")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        reads=LE.reads(),
    shell:
        LE.step("figures", f"{LE.out}/figures", "--input {input}")


FIGURES[LE.paper] = LE_FIGURES


rule llc_estimator:
    input:
        f"{LE.out}/report.md",
