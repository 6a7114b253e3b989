"""The DAG as a user drives it: dry runs, lint, bad configs, and a toy paper end to end."""

import json

import pandas as pd
import pytest
import yaml
from conftest import snakemake

from sltrepro.paths import known_papers

PROFILES = ["smoke", "cpu", "paper"]
REAL_PAPERS = known_papers()


@pytest.mark.parametrize("profile", PROFILES)
def test_dry_run_every_paper(profile, tmp_path):
    """rule all and each paper's own target rule resolve to a complete DAG."""
    targets = ["all", *REAL_PAPERS]
    result = snakemake("-n", *targets, "--config", f"profile={profile}", f"results={tmp_path}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for paper in REAL_PAPERS:
        assert f"{tmp_path}/{profile}/{paper}/report.md" in result.stdout
    assert not any(tmp_path.iterdir()), "a dry run must write nothing"


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
    assert prov["profile"] == "smoke" and prov["seeds"] == {"seed": 0}
    assert set(prov) >= {"git", "versions", "host", "config", "wall_time_s"}
    assert (out / "toy" / "logs" / "sample.log").exists()
    html = toy_root / "report.html"
    assert snakemake("-c1", "--config", "profile=smoke", "--report", html, cwd=toy_root)
    assert html.exists() and html.stat().st_size > 0
    # a second run has nothing to do: outputs are reused, not recomputed
    again = snakemake("-c1", "-n", "--config", "profile=smoke", cwd=toy_root)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_same_seed_same_numbers(toy_root):
    for name in ("a", "b"):
        assert snakemake("-c1", "--config", "profile=smoke", f"results={name}", cwd=toy_root)
    a, b = (json.loads((toy_root / n / "smoke/toy/metrics.json").read_text()) for n in "ab")
    assert a == b


def break_config(root, change):
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
    break_config(toy_root, change)
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
