"""Every paper's smoke DAG, end to end, as CI runs it: the DAG succeeds, every smoke claim
passes, the numbers match the accepted baseline, and the report and provenance are written."""

import json

import pandas as pd
import pytest
from conftest import REPO, run, snakemake

from sltrepro.claims import load_claims
from sltrepro.paths import known_papers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Run each paper's smoke DAG once per session, into a fresh results root."""
    root = tmp_path_factory.mktemp("results")
    done = {}

    def get(paper):
        if paper not in done:
            done[paper] = snakemake(
                "-c2", paper, "--config", "profile=smoke", f"results={root}", timeout=1200
            )
        return done[paper], root / "smoke" / paper

    return get


@pytest.mark.parametrize("paper", known_papers())
def test_smoke_dag_claims_and_baseline(paper, smoke_results):
    result, out = smoke_results(paper)
    assert result.returncode == 0, result.stderr[-5000:]

    table = pd.read_csv(out / "claims.csv")
    expected = [c["id"] for c in load_claims(paper) if "smoke" in c["profiles"]]
    assert table["claim"].tolist() == expected
    failing = table[table["status"] != "pass"]
    assert failing.empty, f"smoke claims fail:\n{failing.to_string()}"

    regress = run(
        ["sltrepro", "regress", paper, "--profile", "smoke", "--results", out.parents[1]],
        cwd=REPO,
    )
    assert regress.returncode == 0, regress.stdout + regress.stderr

    assert f"{len(table)} of {len(table)} claims pass" in (out / "report.md").read_text()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["profile"] == "smoke" and provenance["git"]["commit"]
