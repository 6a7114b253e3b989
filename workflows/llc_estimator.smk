# Lau et al. 2023: the LLC estimator against known lambda (Table 1, Aoyagi DLN/RRR cases)
# and its step-size x nbeta calibration. One job per model / case; collect joins them.
LE = paper_rules("llc_estimator")
LE_FIGURE_NAMES = figure_names(LE.paper)
LE_MODELS = [m["name"] for m in LE.cfg["models"]]
LE_CASES = [c["name"] for c in LE.cfg["dln_cases"]]


rule llc_estimator_normal_crossing:
    output:
        estimates=f"{LE.out}/normal_crossing/{{model}}/estimates.json",
    log:
        LE.log("normal_crossing_{model}"),
    benchmark:
        LE.benchmark("normal_crossing_{model}")
    wildcard_constraints:
        model="|".join(LE_MODELS),
    conda:
        ENV
    threads: 1
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
            outputs=["estimates"],
        )


rule llc_estimator_dln:
    output:
        estimates=f"{LE.out}/dln/{{case}}/estimates.json",
    log:
        LE.log("dln_{case}"),
    benchmark:
        LE.benchmark("dln_{case}")
    wildcard_constraints:
        case="|".join(LE_CASES),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=LE.reads("dln_cases", "num_samples", "sampler", "seed", "seeds"),
    shell:
        LE.step(
            "dln",
            f"{LE.out}/dln/{{wildcards.case}}",
            "--opt case={wildcards.case}",
            outputs=["estimates"],
        )


rule llc_estimator_mala_reference:
    output:
        reference=f"{LE.out}/mala/{{case}}/reference.json",
    log:
        LE.log("mala_{case}"),
    benchmark:
        LE.benchmark("mala_{case}")
    wildcard_constraints:
        case="|".join(LE_CASES),
    conda:
        ENV
    threads: 1
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
            outputs=["reference"],
        )


rule llc_estimator_calibrate:
    output:
        table=f"{LE.out}/calibration/calibration.csv",
        summary=f"{LE.out}/calibration/calibration.json",
    log:
        LE.log("calibrate"),
    benchmark:
        LE.benchmark("calibrate")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=LE.reads("calibration", "dln_cases", "num_samples", "sampler", "seed"),
    shell:
        LE.step("calibrate", f"{LE.out}/calibration", outputs=["table", "summary"])


rule llc_estimator_collect:
    input:
        # Table 1's models first, then the DLN cases: the table's row order
        estimates=expand(
            rules.llc_estimator_normal_crossing.output.estimates, model=LE_MODELS
        )
        + expand(rules.llc_estimator_dln.output.estimates, case=LE_CASES),
        calibration=rules.llc_estimator_calibrate.output.summary,
        mala=expand(
            rules.llc_estimator_mala_reference.output.reference,
            case=LE.cfg["mala_reference"]["cases"],
        ),
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
        LE.step(
            "collect",
            LE.out,
            inputs=["estimates", "calibration", "mala"],
            outputs=["metrics", "table", "diagnostics"],
        )


LE_FIGURES = [f"{LE.out}/figures/{name}.png" for name in LE_FIGURE_NAMES]


rule llc_estimator_figures:
    input:
        table=rules.llc_estimator_collect.output.table,
        estimates=rules.llc_estimator_collect.input.estimates,
        calibration_table=rules.llc_estimator_calibrate.output.table,
        calibration=rules.llc_estimator_calibrate.output.summary,
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
        LE.step(
            "figures",
            f"{LE.out}/figures",
            inputs=["table", "estimates", "calibration_table", "calibration"],
        )


FIGURES[LE.paper] = LE_FIGURES


rule llc_estimator:
    input:
        f"{LE.out}/report.md",
