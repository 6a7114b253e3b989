"""The DAG as a user drives it: dry runs, lint, bad configs, and a toy paper end to end."""

import json
import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import BIN, REPO, planned_rules, snakemake

from sltrepro.paths import known_papers

PROFILES = ["smoke", "cpu", "paper"]
REAL_PAPERS = known_papers()


@pytest.mark.parametrize("profile", PROFILES)
def test_dry_run_every_paper(profile, tmp_path):
    """rule all and each paper's own target rule resolve to a complete DAG."""
    targets = ["all", *REAL_PAPERS]
    result = snakemake(
        "-n", "-p", *targets, "--config", f"profile={profile}", f"results={tmp_path}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for paper in REAL_PAPERS:
        assert f"{tmp_path}/{profile}/{paper}/report.md" in result.stdout
    assert not any(tmp_path.iterdir()), "a dry run must write nothing"
    # every step declares the config it reads, so that a config edit reruns it
    steps = [line for line in result.stdout.splitlines() if "sltrepro run " in line]
    declared = re.compile(r" --reads \S*\bdevice\b\S*@[0-9a-f]{12} ")
    assert steps and all(declared.search(line) for line in steps)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_toy_paper_end_to_end(toy_root):
    result = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root)
    assert result.returncode == 0, result.stderr
    out = toy_root / "results" / "smoke"
    claims = pd.read_csv(out / "toy" / "claims.csv")
    assert claims["status"].tolist() == ["pass", "pass"]
    report = (out / "toy" / "report.md").read_text()
    assert "1 of 1 claims pass; 1 of 1 checks pass" in report
    assert "## Harness checks" in report and "![draws](figures/draws.png)" in report
    assert "| toy" not in (out / "summary.md").read_text().splitlines()[0]
    assert "## toy" in (out / "summary.md").read_text()
    prov = json.loads((out / "toy" / "provenance.json").read_text())
    # provenance records the config each step read: the seed where the draws were made
    assert prov["profile"] == "smoke" and prov["config"] == {
        "device": "cpu",
        "draws": 10,
        "bins": 5,
    }
    sampled = json.loads((out / "toy" / "sample" / "provenance.json").read_text())
    assert sampled["seeds"] == {"seed": 0}
    assert set(prov) >= {"git", "versions", "host", "config", "wall_time_s"}
    assert (out / "toy" / "logs" / "sample.log").exists()
    html = toy_root / "report.html"
    made = snakemake("-c1", "--config", "profile=smoke", "--report", html, cwd=toy_root)
    assert made.returncode == 0, made.stderr
    assert html.exists() and html.stat().st_size > 0
    # a second run has nothing to do: outputs are reused, not recomputed
    again = snakemake("-c1", "-n", "--config", "profile=smoke", cwd=toy_root)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_same_seed_same_numbers(toy_root):
    for name in ("a", "b"):
        done = snakemake("-c1", "--config", "profile=smoke", f"results={name}", cwd=toy_root)
        assert done.returncode == 0, done.stderr
    a, b = (json.loads((toy_root / n / "smoke/toy/metrics.json").read_text()) for n in "ab")
    assert a == b


def test_a_config_edit_reruns_exactly_the_rules_that_read_it(toy_root):
    done = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root)
    assert done.returncode == 0, done.stderr
    smoke = ("--config", "profile=smoke")
    assert planned_rules(*smoke, cwd=toy_root) == set()
    # `bins` is read by the analysis only: the draws are not redrawn
    edit_config(toy_root, lambda c: c.update(bins=7))
    assert planned_rules(*smoke, cwd=toy_root) == {"toy_analyze"}
    assert snakemake("-c1", *smoke, cwd=toy_root).returncode == 0
    assert planned_rules(*smoke, cwd=toy_root) == set()
    # `seed` is read by the sampler: it reruns, and what depends on its output after it
    edit_config(toy_root, lambda c: c.update(seed=1))
    assert planned_rules(*smoke, cwd=toy_root) == {"toy_sample", "toy_analyze"}


def test_a_step_that_reads_an_undeclared_key_stops_with_the_fix(toy_root):
    smk = toy_root / "workflows" / "toy.smk"
    smk.write_text(smk.read_text().replace('TOY.reads("draws", "bins")', 'TOY.reads("draws")'))
    result = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root)
    assert result.returncode != 0
    log = (toy_root / "results" / "smoke" / "toy" / "logs" / "analyze.log").read_text()
    assert "reads config key 'bins'" in log and "reads(...)" in log


def test_a_killed_run_resumes_with_the_documented_commands(toy_root, tmp_path):
    """kill -9 of Snakemake mid-job; the README's resume (unlock, then the same command)
    finishes the run and its claims equal an uninterrupted run's."""
    edit_config(toy_root, lambda c: c.update(delay_s=10))
    command = [BIN / "snakemake", "-c1", "--config", "profile=smoke"]
    started = subprocess.Popen(
        command,
        cwd=toy_root,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = toy_root / "results" / "smoke" / "toy" / "sample" / "draws.json"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.read_text() == "["):
        assert time.monotonic() < deadline and started.poll() is None, "the job never started"
        time.sleep(0.2)
    os.killpg(started.pid, signal.SIGKILL)
    started.wait()

    locked = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    assert snakemake("--unlock", "--config", "profile=smoke", cwd=toy_root).returncode == 0
    resumed = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root, timeout=300)
    assert resumed.returncode == 0, resumed.stderr

    clean = snakemake("-c1", "--config", "profile=smoke", f"results={tmp_path}", cwd=toy_root)
    assert clean.returncode == 0, clean.stderr
    claims = toy_root / "results" / "smoke" / "toy" / "claims.csv"
    assert claims.read_text() == (tmp_path / "smoke" / "toy" / "claims.csv").read_text()


def edit_config(root, change):
    path = root / "papers" / "toy" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config["smoke"])
    path.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("draws"), "'draws' is a required property"),
        (lambda c: c.update(draws="many"), "key draws: 'many' is not of type 'integer'"),
        (lambda c: c.update(typo=1), "'typo' was unexpected"),
    ],
)
def test_bad_paper_config_stops_before_any_job(toy_root, change, message):
    edit_config(toy_root, change)
    result = snakemake("-c1", "--config", "profile=smoke", cwd=toy_root)
    assert result.returncode != 0
    assert message in result.stderr
    assert "papers/toy/config.yaml (profile 'smoke')" in result.stderr
    assert not (toy_root / "results").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (["profile=huge"], "'huge' is not one of ['smoke', 'cpu', 'paper']"),
        (["papers=nosuchpaper"], "unknown paper(s) nosuchpaper"),
    ],
)
def test_bad_run_config_stops_before_any_job(toy_root, config, message):
    result = snakemake("-c1", "--config", *config, cwd=toy_root)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (toy_root / "results").exists()


def test_every_compute_rule_is_benchmarked():
    """Every rule that runs a step records its wall time and memory (Snakemake `benchmark:`),
    the measurements the SLURM profile's resources are sized from."""
    rules = [
        block
        for smk in (REPO / "workflows").glob("*.smk")
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]
    ]
    computing = [block for block in rules if "step(" in block]
    assert computing, "no rule runs a step"
    unmeasured = [block.split(":")[0] for block in computing if "    benchmark:" not in block]
    assert unmeasured == []
