P = f"{R}/toy"


rule toy_sample:
    output:
        f"{P}/sample/draws.json",
    log:
        paper_log("toy", "sample"),
    shell:
        step("toy", "sample", f"{P}/sample")


rule toy_analyze:
    input:
        f"{P}/sample/draws.json",
    output:
        metrics=f"{P}/metrics.json",
        figure=report(f"{P}/figures/draws.png", category="toy"),
    log:
        paper_log("toy", "analyze"),
    shell:
        step("toy", "analyze", P, "--input {input}")


FIGURES["toy"] = [f"{P}/figures/draws.png"]


rule toy:
    input:
        f"{P}/report.md",
