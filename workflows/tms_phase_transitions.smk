# Chen et al. 2023: dynamical versus Bayesian phase transitions in a toy model of superposition.
# critical + llc (one job per critical point) + bayes (one job per sample size) + sgd -> sgd_llc
# -> analyze -> figures.
TMS = PAPER_CONFIG["tms_phase_transitions"]
TMS_P = f"{R}/tms_phase_transitions"
TMS_POINTS = TMS["llc"]["points"]
TMS_NS = TMS["bayes"]["sample_sizes"]
TMS_FIGURES = ["kgon_gallery", "occupancy", "sgd_loss_llc"]


rule tms_phase_transitions_critical:
    output:
        f"{TMS_P}/critical/critical.csv",
    log:
        paper_log("tms_phase_transitions", "critical"),
    benchmark:
        f"{TMS_P}/benchmarks/critical.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "c", "critical", "critical_points", "seed"),
    shell:
        step("tms_phase_transitions", "critical", f"{TMS_P}/critical")


rule tms_phase_transitions_llc:
    output:
        f"{TMS_P}/llc/{{point}}/llc.csv",
    log:
        paper_log("tms_phase_transitions", "llc_{point}"),
    benchmark:
        f"{TMS_P}/benchmarks/llc_{{point}}.tsv"
    wildcard_constraints:
        point="|".join(p.replace("+", r"\+") for p in TMS_POINTS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "critical_points", "llc", "seed"),
    shell:
        step(
            "tms_phase_transitions",
            "llc",
            f"{TMS_P}/llc/{{wildcards.point}}",
            "--opt point={wildcards.point:q}",
        )


rule tms_phase_transitions_bayes:
    output:
        f"{TMS_P}/bayes/n{{n}}/draws.csv",
        f"{TMS_P}/bayes/n{{n}}/sampler.json",
    log:
        paper_log("tms_phase_transitions", "bayes_n{n}"),
    benchmark:
        f"{TMS_P}/benchmarks/bayes_n{{n}}.tsv"
    wildcard_constraints:
        n="|".join(str(n) for n in TMS_NS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "bayes.initial_step_size", "bayes.num_adapt", "bayes.num_burnin", "bayes.num_chains", "bayes.num_draws", "bayes.prior_std", "bayes.thin", "c", "seed"),
    shell:
        step("tms_phase_transitions", "bayes", f"{TMS_P}/bayes/n{{wildcards.n}}", "--opt n={wildcards.n}")


rule tms_phase_transitions_sgd:
    output:
        f"{TMS_P}/sgd/history.npz",
    log:
        paper_log("tms_phase_transitions", "sgd"),
    benchmark:
        f"{TMS_P}/benchmarks/sgd.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "c", "seed", "sgd.batch_size", "sgd.init_std", "sgd.log_points", "sgd.lr", "sgd.n_samples", "sgd.num_seeds", "sgd.num_steps"),
    shell:
        step("tms_phase_transitions", "sgd", f"{TMS_P}/sgd")


rule tms_phase_transitions_sgd_llc:
    input:
        f"{TMS_P}/sgd/history.npz",
    output:
        f"{TMS_P}/sgd_llc/plateaus.csv",
        f"{TMS_P}/sgd_llc/llc.csv",
    log:
        paper_log("tms_phase_transitions", "sgd_llc"),
    benchmark:
        f"{TMS_P}/benchmarks/sgd_llc.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "c", "critical_points", "llc", "plateau", "sgd.llc_seeds", "sgd.n_samples"),
    shell:
        step("tms_phase_transitions", "sgd_llc", f"{TMS_P}/sgd_llc")


rule tms_phase_transitions_analyze:
    input:
        f"{TMS_P}/critical/critical.csv",
        expand(f"{TMS_P}/llc/{{point}}/llc.csv", point=TMS_POINTS),
        expand(f"{TMS_P}/bayes/n{{n}}/draws.csv", n=TMS_NS),
        f"{TMS_P}/sgd/history.npz",
        f"{TMS_P}/sgd_llc/llc.csv",
    output:
        metrics=f"{TMS_P}/metrics.json",
        occupancy=f"{TMS_P}/occupancy.csv",
    log:
        paper_log("tms_phase_transitions", "analyze"),
    benchmark:
        f"{TMS_P}/benchmarks/analyze.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "bayes.max_start_disagreement", "bayes.sample_sizes", "c", "critical_points", "llc.max_drift", "llc.points", "paper_lambdas", "plateau_level_rtol"),
    shell:
        step("tms_phase_transitions", "analyze", TMS_P)


rule tms_phase_transitions_figures:
    input:
        f"{TMS_P}/metrics.json",
        f"{TMS_P}/occupancy.csv",
    output:
        [report_figure("tms_phase_transitions", f"{TMS_P}/figures/{name}.png") for name in TMS_FIGURES],
    log:
        paper_log("tms_phase_transitions", "figures"),
    benchmark:
        f"{TMS_P}/benchmarks/figures.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    params:
        reads=reads("tms_phase_transitions", "critical_points"),
    shell:
        step("tms_phase_transitions", "figures", f"{TMS_P}/figures")


FIGURES["tms_phase_transitions"] = [f"{TMS_P}/figures/{name}.png" for name in TMS_FIGURES]


rule tms_phase_transitions:
    input:
        f"{TMS_P}/report.md",
