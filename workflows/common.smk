# Shared by every paper: run config, per-paper config validation, and the final rules
# (claims table, report, summary). Paper workflows add only their own computing rules.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

from sltrepro.config import ConfigError, load_profile, reads_spec  # noqa: E402
from sltrepro.paths import known_papers  # noqa: E402

validate(config, "schemas/run.schema.yaml", set_default=True)

PROFILE = config["profile"]
RESULTS = config["results"]
R = f"{RESULTS}/{PROFILE}"
PAPERS = known_papers()


def _selected_papers(spec):
    wanted = PAPERS if spec == "all" else [p.strip() for p in spec.split(",") if p.strip()]
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
    return report(path, caption=caption, category=paper, subcategory=part, labels=labels)

# Rules call the `sltrepro` of the Python that runs Snakemake (the project's .venv).
shell.prefix(f'set -euo pipefail; export PATH="{Path(sys.executable).parent}:$PATH"; ')


wildcard_constraints:
    paper="|".join(PAPERS),


def paper_log(paper, name):
    """Where a rule of ``paper`` writes its log."""
    return f"{R}/{paper}/logs/{name}.log"


def reads(paper, *keys):
    """A rule's ``params: reads=reads(paper, key, "block.key", ...)``: the config keys its step
    reads, with a digest of their values. Snakemake reruns a rule whose params changed, so a
    config edit reruns exactly the rules that read what changed (and what depends on them)."""
    where = f"papers/{paper}/config.yaml (profile {PROFILE!r})"
    try:
        return reads_spec(PAPER_CONFIG[paper], keys, where=where)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


def step(paper, name, outdir, extra="", inputs=(), outputs=()):
    """The shell command that runs step ``name`` of ``paper`` into ``outdir``; the rule must
    declare ``params: reads=reads(paper, ...)``: the step sees only those config keys.
    ``inputs``/``outputs`` name entries of the rule's own ``input:``/``output:``; the step
    reads them as ``ctx.input(name)`` (``ctx.input_list(name)`` for a list) and
    ``ctx.output(name)``, so every path is written once, in the rule."""
    files = [f"--input {n}={{input.{n}}}" for n in inputs]
    files += [f"--output {n}={{output.{n}}}" for n in outputs]
    run = (
        f"sltrepro run {paper} {name} --profile {PROFILE} --results {RESULTS} "
        f"--outdir {outdir} --threads {{threads}} --reads {{params.reads}}"
    )
    return " ".join(part for part in (run, *files, extra, "&> {log}") if part)
