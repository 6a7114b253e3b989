# sltrepro: one DAG per paper, built from the shared code in src/sltrepro.
#   snakemake -c2                                   every paper, cpu profile
#   snakemake -c2 --config profile=smoke            every paper, the CI profile
#   snakemake -c2 saddle_to_saddle                  one paper (its target rule)
# See README.md; conventions for adding a paper: docs/DEVELOPING.md.


include: "workflows/common.smk"


for _paper in PAPERS:

    include: f"workflows/{_paper}.smk"


include: "workflows/final.smk"


rule all:
    default_target: True
    input:
        expand(f"{R}/{{paper}}/report.md", paper=SELECTED),
        f"{R}/summary.md",
