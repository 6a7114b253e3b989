P = f"{R}/toy"


rule toy_sample:
    output:
        draws=f"{P}/sample/draws.json",
    log:
        paper_log("toy", "sample"),
    params:
        reads=reads("toy", "seed", "draws", "delay_s"),
    shell:
        step("toy", "sample", f"{P}/sample", outputs=["draws"])


rule toy_analyze:
    input:
        draws=rules.toy_sample.output.draws,
    output:
        metrics=f"{P}/metrics.json",
        figure=report_figure("toy", f"{P}/figures/draws.png"),
    log:
        paper_log("toy", "analyze"),
    params:
        reads=reads("toy", "draws", "bins"),
    shell:
        step("toy", "analyze", P, inputs=["draws"], outputs=["metrics", "figure"])


FIGURES["toy"] = [f"{P}/figures/draws.png"]


rule toy:
    input:
        f"{P}/report.md",
