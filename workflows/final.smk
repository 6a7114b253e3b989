# The last rules of every paper: claims table and report; and the summary of all papers.


rule claims:
    input:
        metrics=f"{R}/{{paper}}/metrics.json",
        claims="papers/{paper}/claims.yaml",
    output:
        f"{R}/{{paper}}/claims.csv",
    log:
        f"{R}/{{paper}}/logs/claims.log",
    conda:
        ENV
    params:
        profile=PROFILE,
    shell:
        "sltrepro claims {wildcards.paper} --profile {params.profile} --metrics {input.metrics} "
        "--out {output} --no-fail &> {log}"


rule report:
    input:
        claims=f"{R}/{{paper}}/claims.csv",
        metrics=f"{R}/{{paper}}/metrics.json",
        figures=lambda wc: FIGURES[wc.paper],
    output:
        md=f"{R}/{{paper}}/report.md",
        # the paper's claims page and front-page section in the HTML report
        html=report(
            f"{R}/{{paper}}/claims.html",
            caption="report/claims.rst",
            category="Claims",
            labels={"paper": "{paper}"},
        ),
        front=f"{R}/{{paper}}/claims.rst",
    log:
        f"{R}/{{paper}}/logs/report.log",
    conda:
        ENV
    params:
        profile=PROFILE,
    shell:
        "sltrepro report {wildcards.paper} --profile {params.profile} --claims {input.claims} "
        "--metrics {input.metrics} --out {output.md} --html {output.html} "
        "--front {output.front} --figures {input.figures} &> {log}"


rule summary:
    input:
        expand(f"{R}/{{paper}}/claims.csv", paper=SELECTED),
    output:
        f"{R}/summary.md",
    log:
        f"{R}/logs/summary.log",
    conda:
        ENV
    params:
        profile=PROFILE,
    shell:
        "sltrepro summary --profile {params.profile} --out {output} --claims {input} &> {log}"
