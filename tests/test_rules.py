"""The one naming helper of paper workflows (``paper_rules`` in common.smk)."""

import importlib

import pytest
from snakemake.exceptions import WorkflowError

from sltrepro.paths import known_papers
from sltrepro.rules import PaperRules, figure_names

CFG = {"device": "auto", "seed": 1, "llc": {"step_size": 0.1}}
P = PaperRules("toy", "smoke", "results", CFG)


def test_names_come_from_the_paper_and_the_run():
    assert P.out == "results/smoke/toy"
    assert P.log("train_seed{seed}") == "results/smoke/toy/logs/train_seed{seed}.log"
    assert P.benchmark("train") == "results/smoke/toy/benchmarks/train.tsv"


def test_step_passes_named_files_of_the_rule():
    cmd = P.step("fit", f"{P.out}/fit", "--opt seed=3", inputs=["data"], outputs=["metrics"])
    assert cmd == (
        "sltrepro run toy fit --profile smoke --results results --outdir results/smoke/toy/fit "
        "--threads {threads} --reads {params.reads} --input data={input.data} "
        "--output metrics={output.metrics} --opt seed=3 &> {log}"
    )


def test_reads_names_a_missing_key_as_a_workflow_error():
    assert P.reads("llc.step_size").startswith("device,llc.step_size@")
    with pytest.raises(WorkflowError, match="llc.nbeta.*not there"):
        P.reads("llc.nbeta")


@pytest.mark.parametrize("paper", known_papers())
def test_figure_names_read_from_source_equal_the_imported_list(paper):
    figures = importlib.import_module(f"sltrepro.papers.{paper}.figures")
    assert figure_names(paper) == figures.FIGURES


def test_figure_names_of_a_module_without_a_list_is_a_workflow_error():
    with pytest.raises(WorkflowError, match="exports no FIGURES"):
        figure_names("llc_at_scale", "pipeline")
