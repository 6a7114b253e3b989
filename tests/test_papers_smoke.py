"""Every paper's smoke DAG, end to end, as CI runs it: the DAG succeeds, every smoke check
passes, every smoke claim passes or fails as its accepted baseline records (with a reason),
the numbers match the baseline, and the report and provenance are written."""

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
    # Every check passes. A claim may fail only with a reason and only where the accepted
    # baseline records that failure (re-accepted deliberately, the reason in the commit).
    failing = table[table["status"] != "pass"]
    assert (failing["kind"] == "claim").all(), f"smoke checks fail:\n{failing.to_string()}"
    assert failing["reason"].fillna("").astype(str).str.len().gt(0).all(), failing.to_string()
    baseline = pd.read_csv(REPO / "papers" / paper / "baselines" / "smoke.csv")
    accepted = dict(zip(baseline["claim"], baseline.get("status", "pass"), strict=True))
    unaccepted = failing[[accepted.get(c) != "fail" for c in failing["claim"]]]
    assert unaccepted.empty, f"smoke claims fail:\n{unaccepted.to_string()}"

    regress = run(
        ["sltrepro", "regress", paper, "--profile", "smoke", "--results", out.parents[1]],
        cwd=REPO,
    )
    assert regress.returncode == 0, regress.stdout + regress.stderr

    claims = table[table["kind"] == "claim"]
    checks = table[table["kind"] == "check"]
    counts = f"{len(claims) - len(failing)} of {len(claims)} claims pass"
    if len(checks):
        counts += f"; {len(checks)} of {len(checks)} checks pass"
    assert counts in (out / "report.md").read_text()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["profile"] == "smoke" and provenance["git"]["commit"]
