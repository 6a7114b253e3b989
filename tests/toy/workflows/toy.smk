TOY = paper_rules("toy")


rule toy_sample:
    output:
        draws=f"{TOY.out}/sample/draws.json",
    log:
        TOY.log("sample"),
    params:
        reads=TOY.reads("seed", "draws", "delay_s"),
    shell:
        TOY.step("sample", f"{TOY.out}/sample", outputs=["draws"])


rule toy_analyze:
    input:
        draws=rules.toy_sample.output.draws,
    output:
        metrics=f"{TOY.out}/metrics.json",
        figure=report_figure(TOY.paper, f"{TOY.out}/figures/draws.png"),
    log:
        TOY.log("analyze"),
    params:
        reads=TOY.reads("draws", "bins"),
    shell:
        TOY.step("analyze", TOY.out, inputs=["draws"], outputs=["metrics", "figure"])


FIGURES[TOY.paper] = [f"{TOY.out}/figures/draws.png"]


rule toy:
    input:
        f"{TOY.out}/report.md",
