# Shared by every paper: run config, per-paper config validation, and the final rules
# (claims table, report, summary). Paper workflows add only their own computing rules.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

from sltrepro.config import ConfigError, load_profile  # noqa: E402
from sltrepro.paths import known_papers  # noqa: E402
from sltrepro.rules import PaperRules, figure_names  # noqa: E402

validate(config, "schemas/run.schema.yaml", set_default=True)

PROFILE = config["profile"]
RESULTS = config["results"]
R = f"{RESULTS}/{PROFILE}"
PAPERS = known_papers()


def _selected_papers(spec):
    wanted = (
        PAPERS if spec == "all" else [p.strip() for p in spec.split(",") if p.strip()]
    )
    unknown = [p for p in wanted if p not in PAPERS]
    if unknown:
        raise WorkflowError(
            f"unknown paper(s) {', '.join(unknown)} in --config papers=...; "
            f"known papers: {', '.join(PAPERS)}"
        )
    return wanted


SELECTED = _selected_papers(config["papers"])

try:
    PAPER_CONFIG = {paper: load_profile(paper, PROFILE) for paper in PAPERS}
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# The software environment of every rule (used with `--sdm conda`; documents the stack).
ENV = str(Path(workflow.basedir) / "workflows" / "envs" / "sltrepro.yaml")

# Each paper's smk registers the figures its report shows.
FIGURES = {paper: [] for paper in PAPERS}


# The HTML report (snakemake --report, `make report`): this front page, each paper's figures
# with their captions (report_figure) and each paper's claims table (rule report).
report: "report/workflow.rst"


def report_figure(paper, path, part=None):
    """Output ``path``, a figure of ``paper``, marked for the HTML report with its caption
    workflows/report/<paper>/[<part>_]<figure name>.rst; ``part`` (a half of a paper) is
    also the figure's subcategory there."""
    name = Path(path).stem if part is None else f"{part}_{Path(path).stem}"
    caption = f"report/{paper}/{name}.rst"
    if not (Path(workflow.basedir) / "workflows" / caption).exists():
        raise WorkflowError(f"figure {path} has no caption: write workflows/{caption}")
    labels = {"figure": Path(path).stem.replace("_", " ")}
    return report(
        path, caption=caption, category=paper, subcategory=part, labels=labels
    )


# Rules call the `sltrepro` of the Python that runs Snakemake (the project's .venv).
shell.prefix(f'set -euo pipefail; export PATH="{Path(sys.executable).parent}:$PATH"; ')


wildcard_constraints:
    paper="|".join(PAPERS),


def paper_rules(paper):
    """The names ``paper``'s workflow uses for this run: ``.cfg`` (its validated profile
    block), ``.out`` (its results folder), ``.log(name)``, ``.benchmark(name)``,
    ``.reads(key, ...)`` and ``.step(name, outdir, ...)`` (see sltrepro.rules.PaperRules).
    """
    return PaperRules(paper, PROFILE, RESULTS, PAPER_CONFIG[paper])
