# Chen et al. 2023: dynamical versus Bayesian phase transitions in a toy model of superposition.
# critical + llc (one job per critical point) + bayes (one job per sample size) + sgd -> sgd_llc
# -> analyze -> figures.
TMS = paper_rules("tms_phase_transitions")
TMS_FIGURES = figure_names(TMS.paper)
TMS_POINTS = TMS.cfg["llc"]["points"]
TMS_NS = TMS.cfg["bayes"]["sample_sizes"]


rule tms_phase_transitions_critical:
    output:
        critical=f"{TMS.out}/critical/critical.csv",
    log:
        TMS.log("critical"),
    benchmark:
        TMS.benchmark("critical")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=TMS.reads("c", "critical", "critical_points", "seed"),
    shell:
        TMS.step("critical", f"{TMS.out}/critical", outputs=["critical"])


rule tms_phase_transitions_llc:
    output:
        llc=f"{TMS.out}/llc/{{point}}/llc.csv",
        trace=f"{TMS.out}/llc/{{point}}/trace.npy",
    log:
        TMS.log("llc_{point}"),
    benchmark:
        TMS.benchmark("llc_{point}")
    wildcard_constraints:
        point="|".join(p.replace("+", r"\+") for p in TMS_POINTS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        reads=TMS.reads("critical_points", "llc", "seed"),
    shell:
        TMS.step(
            "llc",
            f"{TMS.out}/llc/{{wildcards.point}}",
            "--opt point={wildcards.point:q}",
            outputs=["llc", "trace"],
        )


rule tms_phase_transitions_bayes:
    output:
        draws=f"{TMS.out}/bayes/n{{n}}/draws.csv",
        sampler=f"{TMS.out}/bayes/n{{n}}/sampler.json",
    log:
        TMS.log("bayes_n{n}"),
    benchmark:
        TMS.benchmark("bayes_n{n}")
    wildcard_constraints:
        n="|".join(str(n) for n in TMS_NS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=TMS.reads(
            "bayes.initial_step_size",
            "bayes.num_adapt",
            "bayes.num_burnin",
            "bayes.num_chains",
            "bayes.num_draws",
            "bayes.prior_std",
            "bayes.thin",
            "c",
            "seed",
        ),
    shell:
        TMS.step(
            "bayes",
            f"{TMS.out}/bayes/n{{wildcards.n}}",
            "--opt n={wildcards.n}",
            outputs=["draws", "sampler"],
        )


rule tms_phase_transitions_sgd:
    output:
        history=f"{TMS.out}/sgd/history.npz",
    log:
        TMS.log("sgd"),
    benchmark:
        TMS.benchmark("sgd")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        reads=TMS.reads(
            "c",
            "seed",
            "sgd.batch_size",
            "sgd.init_std",
            "sgd.log_points",
            "sgd.lr",
            "sgd.n_samples",
            "sgd.num_seeds",
            "sgd.num_steps",
        ),
    shell:
        TMS.step("sgd", f"{TMS.out}/sgd", outputs=["history"])


rule tms_phase_transitions_sgd_llc:
    input:
        history=rules.tms_phase_transitions_sgd.output.history,
    output:
        plateaus=f"{TMS.out}/sgd_llc/plateaus.csv",
        llc=f"{TMS.out}/sgd_llc/llc.csv",
    log:
        TMS.log("sgd_llc"),
    benchmark:
        TMS.benchmark("sgd_llc")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        reads=TMS.reads(
            "c", "critical_points", "llc", "plateau", "sgd.llc_seeds", "sgd.n_samples"
        ),
    shell:
        TMS.step(
            "sgd_llc",
            f"{TMS.out}/sgd_llc",
            inputs=["history"],
            outputs=["plateaus", "llc"],
        )


rule tms_phase_transitions_analyze:
    input:
        critical=rules.tms_phase_transitions_critical.output.critical,
        llc=expand(rules.tms_phase_transitions_llc.output.llc, point=TMS_POINTS),
        draws=expand(rules.tms_phase_transitions_bayes.output.draws, n=TMS_NS),
        sampler=expand(rules.tms_phase_transitions_bayes.output.sampler, n=TMS_NS),
        history=rules.tms_phase_transitions_sgd.output.history,
        plateaus=rules.tms_phase_transitions_sgd_llc.output.plateaus,
        sgd_llc=rules.tms_phase_transitions_sgd_llc.output.llc,
    output:
        metrics=f"{TMS.out}/metrics.json",
        occupancy=f"{TMS.out}/occupancy.csv",
        sgd_sequences=f"{TMS.out}/sgd_sequences.csv",
    log:
        TMS.log("analyze"),
    benchmark:
        TMS.benchmark("analyze")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=TMS.reads(
            "bayes.max_start_disagreement",
            "bayes.sample_sizes",
            "c",
            "critical_points",
            "llc.max_drift",
            "llc.points",
            "paper_lambdas",
            "plateau_level_rtol",
        ),
    shell:
        TMS.step(
            "analyze",
            TMS.out,
            inputs=[
                "critical",
                "llc",
                "draws",
                "sampler",
                "history",
                "plateaus",
                "sgd_llc",
            ],
            outputs=["metrics", "occupancy", "sgd_sequences"],
        )


rule tms_phase_transitions_figures:
    input:
        critical=rules.tms_phase_transitions_critical.output.critical,
        metrics=rules.tms_phase_transitions_analyze.output.metrics,
        occupancy=rules.tms_phase_transitions_analyze.output.occupancy,
        history=rules.tms_phase_transitions_sgd.output.history,
        plateaus=rules.tms_phase_transitions_sgd_llc.output.plateaus,
        sgd_llc=rules.tms_phase_transitions_sgd_llc.output.llc,
        llc=expand(rules.tms_phase_transitions_llc.output.llc, point=TMS_POINTS),
        traces=expand(rules.tms_phase_transitions_llc.output.trace, point=TMS_POINTS),
    output:
        [
            report_figure(TMS.paper, f"{TMS.out}/figures/{name}.png")
            for name in TMS_FIGURES
        ],
    log:
        TMS.log("figures"),
    benchmark:
        TMS.benchmark("figures")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reads=TMS.reads("critical_points"),
    shell:
        TMS.step(
            "figures",
            f"{TMS.out}/figures",
            inputs=[
                "critical",
                "metrics",
                "occupancy",
                "history",
                "plateaus",
                "sgd_llc",
                "llc",
                "traces",
            ],
        )


FIGURES[TMS.paper] = [f"{TMS.out}/figures/{name}.png" for name in TMS_FIGURES]


rule tms_phase_transitions:
    input:
        f"{TMS.out}/report.md",
