"""SLURM requests from measured benchmarks (``sltrepro resources``)."""

import pytest
import yaml
from conftest import REPO, snakemake

from sltrepro import resources
from sltrepro.cli import main

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tjobid\trule_name\twildcards\tthreads\n"


def write_benchmark(root, paper, name, rule, seconds, rss):
    folder = root / "cpu" / paper / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.tsv").write_text(
        HEADER + f"{seconds}\t0:00:00\t{rss}\t900\t1\t{rule}\t{{}}\t1\n"
    )


def test_request_is_the_largest_job_times_the_margin(tmp_path):
    write_benchmark(tmp_path, "p", "fit_a", "p_fit", 100.0, 700.0)
    write_benchmark(tmp_path, "p", "fit_b", "p_fit", 1000.0, 300.0)
    write_benchmark(tmp_path, "p", "plot", "p_plot", 2.0, 150.0)
    fit, plot = resources.requests(resources.read_benchmarks("cpu", ["p"], tmp_path))
    assert (fit.rule, fit.jobs, fit.max_s, fit.max_rss_mb) == ("p_fit", 2, 1000.0, 700.0)
    assert fit.mem_mb == 1100  # 1.5 x 700 MB, rounded up to 100 MB
    assert fit.runtime == 50  # 3 x 1000 s = 50 min
    assert (plot.mem_mb, plot.runtime) == (resources.MIN_MEM_MB, resources.MIN_RUNTIME_MIN)
    assert fit.slurm() == {"mem_mb": "1100 * 2 ** (attempt - 1)", "runtime": "50 * attempt"}


def test_benchmarks_without_rule_names_are_an_error_naming_them(tmp_path):
    folder = tmp_path / "cpu" / "p" / "benchmarks"
    folder.mkdir(parents=True)
    (folder / "old.tsv").write_text("s\th:m:s\tmax_rss\n1.0\t0:00:01\t100\n")
    with pytest.raises(FileNotFoundError, match="old.tsv"):
        resources.read_benchmarks("cpu", ["p"], tmp_path)
    with pytest.raises(FileNotFoundError, match="run the cpu DAG first"):
        resources.read_benchmarks("cpu", ["q"], tmp_path)


def test_workflow_profile_keeps_gpu_requests_and_local_settings():
    req = resources.Request("p_fit", 1, max_rss_mb=200.0, max_s=10.0, mem_mb=500, runtime=5)
    slurm = {"set-resources": {"p_fit": {"gpu": 1, "mem_mb": 9999}, "p_other": {"gpu": 1}}}
    text = resources.workflow_profile([req], slurm, {"rerun-incomplete": True}, "cpu")
    assert "p_fit: 1 job(s), 10 s, 200 MB" in text
    profile = yaml.safe_load(text)
    assert profile["rerun-incomplete"] is True
    assert profile["set-resources"]["p_fit"] == {"gpu": 1, **req.slurm()}
    assert profile["set-resources"]["p_other"] == {"gpu": 1}


def test_cli_prints_the_requests(tmp_path, capsys):
    write_benchmark(tmp_path, "llc_estimator", "fit", "llc_estimator_fit", 60.0, 400.0)
    assert main(["resources", "llc_estimator", "--profile", "cpu", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "llc_estimator_fit" in out and "600" in out


def test_written_profile_sizes_the_slurm_jobs(tmp_path, capsys):
    """The written workflow profile, beside profiles/slurm, gives a measured rule its request
    (a Snakemake dry run with the SLURM executor prints each job's resources)."""
    write_benchmark(tmp_path, "llc_estimator", "fit", "llc_estimator_dln", 600.0, 1000.0)
    out = tmp_path / "profile"
    argv = ["resources", "llc_estimator", "--profile", "cpu", "--results", str(tmp_path)]
    assert main([*argv, "--write", str(out)]) == 0
    dry = snakemake(
        "--profile", REPO / "profiles" / "slurm", "--workflow-profile", out, "-n", "--forceall",
        "llc_estimator", "--config", "profile=cpu", f"results={tmp_path / 'dry'}",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    dln = [line for line in (dry.stdout + dry.stderr).splitlines() if "mem_mb=1500" in line]
    assert dln and all("runtime=30" in line for line in dln), dry.stdout[-3000:] + dry.stderr
