P = f"{R}/toy"


rule toy_sample:
    output:
        f"{P}/sample/draws.json",
    log:
        paper_log("toy", "sample"),
    params:
        reads=reads("toy", "seed", "draws", "delay_s"),
    shell:
        step("toy", "sample", f"{P}/sample")


rule toy_analyze:
    input:
        f"{P}/sample/draws.json",
    output:
        metrics=f"{P}/metrics.json",
        figure=report_figure("toy", f"{P}/figures/draws.png"),
    log:
        paper_log("toy", "analyze"),
    params:
        reads=reads("toy", "draws", "bins"),
    shell:
        step("toy", "analyze", P, "--input {input}")


FIGURES["toy"] = [f"{P}/figures/draws.png"]


rule toy:
    input:
        f"{P}/report.md",
