"""Every paper's smoke DAG, end to end, as CI runs it: the DAG succeeds, every smoke check
passes, every smoke claim passes or fails (with a reason) as its accepted baseline records,
the numbers match the baseline, the report and provenance are written, and a small deliberate
change (the paper's ``drift_check``) reruns only what it concerns and fails the baseline."""

import json
import shutil

import pandas as pd
import pytest
import yaml
from conftest import REPO, planned_rules, run, snakemake

from sltrepro.claims import load_claims
from sltrepro.config import read_yaml
from sltrepro.paths import known_papers, paper_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Run every paper's smoke DAG once per session, all in one Snakemake run (the
    documented `snakemake -c2 --config profile=smoke`), into a fresh results root. One run
    keeps both cores busy where one paper's DAG is a chain of single jobs: 5 min wall
    against ~10 for the papers one after another. ``--keep-going`` lets the other papers
    finish when one fails; that paper's test, and the whole run's, then fail."""
    root = tmp_path_factory.mktemp("results")
    done = {}

    def get(paper=None):
        if "run" not in done:
            done["run"] = snakemake(
                "-c2", "--keep-going", "--config", "profile=smoke", f"results={root}",
                timeout=2400,
            )  # fmt: skip
        return done["run"], root / "smoke" / (paper or "")

    return get


def test_smoke_dags_of_every_paper_and_the_summary(smoke_results):
    result, out = smoke_results()
    assert result.returncode == 0, result.stderr[-5000:]
    assert (out / "summary.md").is_file()


def regress(paper, out):
    command = ["sltrepro", "regress", paper, "--profile", "smoke", "--results", out.parents[1]]
    return run(command, cwd=REPO)


def papers_with_edit(root, paper, dotted, factor):
    """A copy of papers/ whose ``paper`` smoke block has ``dotted`` multiplied by ``factor``."""
    shutil.copytree(REPO / "papers", root / "papers")
    path = root / "papers" / paper / "config.yaml"
    config = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    block = config["smoke"]
    for key in parents:
        block = block[int(key)] if isinstance(block, list) else block[key]
    block[last] = block[last] * factor
    path.write_text(yaml.safe_dump(config))
    return root


@pytest.mark.parametrize("paper", known_papers())
def test_smoke_dag_claims_and_baseline(paper, smoke_results, tmp_path):
    result, out = smoke_results(paper)
    assert (out / "report.md").is_file(), result.stderr[-5000:]

    table = pd.read_csv(out / "claims.csv")
    expected = [c["id"] for c in load_claims(paper) if "smoke" in c["profiles"]]
    assert table["claim"].tolist() == expected
    # Every check passes. A claim may fail only with a reason, and only where the accepted
    # baseline records that failure: the baseline holds every verdict (verdict:<id>).
    failing = table[table["status"] != "pass"]
    assert (failing["kind"] == "claim").all(), f"smoke checks fail:\n{failing.to_string()}"
    assert failing["reason"].fillna("").astype(str).str.len().gt(0).all(), failing.to_string()

    matches = regress(paper, out)
    assert matches.returncode == 0, matches.stdout + matches.stderr

    claims = table[table["kind"] == "claim"]
    checks = table[table["kind"] == "check"]
    counts = f"{len(claims) - len(failing)} of {len(claims)} claims pass"
    if len(checks):
        counts += f"; {len(checks)} of {len(checks)} checks pass"
    assert counts in (out / "report.md").read_text()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["profile"] == "smoke" and provenance["git"]["commit"]

    # A small deliberate change: only the rules that read it (and what uses their outputs)
    # rerun, and the baseline, whose tolerances come from measured rounding noise, catches it.
    check = read_yaml(paper_dir(paper) / "paper.yaml")["drift_check"]
    edited = papers_with_edit(tmp_path, paper, check["edit"], check["factor"])
    env = {"SLTREPRO_ROOT": str(edited)}
    smoke = (paper, "--config", "profile=smoke", f"results={out.parents[1]}")
    planned = planned_rules(*smoke, env=env)
    assert planned and not planned & set(check["unchanged"]), planned
    rerun = snakemake("-c2", *smoke, env=env, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    moved = regress(paper, out)
    assert moved.returncode == 1 and "moved" in moved.stdout, moved.stdout + moved.stderr
