"""The SLURM path: one paper's smoke DAG runs on a one-node SLURM cluster on localhost
through Snakemake's SLURM executor plugin and profiles/slurm; its claims match the local
run's (the paper's accepted smoke baseline).

Needs root and Debian's slurm-wlm and munge packages (installed here with apt-get when
missing); skips, saying why, where they cannot be had. The daemons are started by
tests/slurm/start_cluster.sh and stopped by process id (tests/slurm/stop_cluster.sh) however
the test ends. docs/slurm.md describes the setup.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, run, snakemake

from sltrepro import regress
from sltrepro.claims import load_metrics
from sltrepro.paths import known_papers

SCRIPTS = REPO / "tests" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
# The first of these that exists runs through SLURM; SLTREPRO_SLURM_PAPER names another.
PREFERRED_PAPERS = ("llc_estimator", "llc_at_scale")
PACKAGES = ("slurm-wlm", "munge")
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo")
SBIN_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
APT_TIMEOUT_S = 240  # every apt-get call together
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def slurm_paper() -> str:
    """The paper whose smoke DAG the test sends through SLURM."""
    papers = known_papers()
    wanted = os.environ.get("SLTREPRO_SLURM_PAPER")
    if wanted:
        return wanted
    return next((p for p in PREFERRED_PAPERS if p in papers), papers[0] if papers else "none")


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p, path=SBIN_PATH) is None]


def install_slurm() -> str | None:
    """Install slurm-wlm and munge with apt-get where missing; why not, or None when done."""
    if not missing_programs():
        return None
    if os.geteuid() != 0:
        return f"needs root to install {' and '.join(PACKAGES)} and to run slurmd"
    if shutil.which("apt-get") is None:
        return f"no apt-get to install {' and '.join(PACKAGES)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    deadline = time.monotonic() + APT_TIMEOUT_S
    # a fresh machine may have no package lists yet: install, else update and install again
    for cmd in (install, ["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(
                cmd,
                env=env,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired:
            return f"apt-get did not install {' and '.join(PACKAGES)} within {APT_TIMEOUT_S} s"
        if done.returncode == 0 and not missing_programs():
            return None
    return f"apt-get could not install {' and '.join(PACKAGES)}:\n{done.stderr[-1000:]}"


@pytest.fixture(scope="module")
def slurm_env():
    """A running one-node cluster: the environment (SLURM_CONF) that reaches it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: slurmd runs jobs as their user and munged needs its own key")
    reason = install_slurm()
    if reason:
        pytest.skip(reason)
    # Short path: munged's socket path must stay under the 108-byte limit of unix sockets.
    state = Path(tempfile.mkdtemp(prefix="sltrepro-slurm-", dir="/tmp"))
    try:
        started = run(["bash", SCRIPTS / "start_cluster.sh", state, "90"], REPO, timeout=150)
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"SLURM_CONF": str(state / "etc" / "slurm.conf")}
    finally:
        stopped = run(["bash", SCRIPTS / "stop_cluster.sh", state], REPO, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr


def queue(env: dict) -> dict[str, dict]:
    """Every job slurmctld still holds (finished ones for MinJobAge): id -> name/state/gpus."""
    listed = run(
        ["squeue", "--noheader", "--states=all", "-O", "JobID:|,State:|,Name:|,tres-per-job:"],
        REPO,
        env=env,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    rows = (line.split("|") for line in listed.stdout.splitlines() if line.strip())
    return {r[0].strip(): {"state": r[1].strip(), "name": r[2].strip(), "tres": r[3]} for r in rows}


def gpu_rules() -> set[str]:
    """Rules that profiles/slurm sends to a GPU."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return {rule for rule, res in profile.get("set-resources", {}).items() if res.get("gpu")}


@pytest.mark.parametrize("folder", [PROFILE, *sorted(REPO.glob("profiles/slurm-*"))])
def test_profile_names_real_rules(folder):
    """Snakemake ignores set-resources / set-threads of unknown rules: catch renamed ones
    (also in the measured profiles that `sltrepro resources --write` makes)."""
    profile = yaml.safe_load((folder / "config.yaml").read_text())
    listed = snakemake("--list-rules", "--config", "profile=smoke")
    assert listed.returncode == 0, listed.stderr
    rules = set(listed.stdout.split())
    named = set(profile.get("set-resources", {})) | set(profile.get("set-threads", {}))
    assert named - rules == set(), f"{folder} names rules that do not exist: {named - rules}"


@pytest.mark.e2e
@pytest.mark.parametrize("paper", [slurm_paper()])
def test_smoke_dag_through_slurm(paper, slurm_env, tmp_path):
    assert paper in known_papers(), f"no paper {paper!r} to run through SLURM"
    results = tmp_path / "results"
    slurm_logs = tmp_path / "slurm_logs"
    on_slurm = snakemake(
        "--profile",
        PROFILE,
        paper,
        "--config",
        "profile=smoke",
        f"results={results}",
        # the test node has no job accounting: job states come from slurmctld via squeue
        "--slurm-status-command=squeue",
        f"--slurm-logdir={slurm_logs}",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks=1",
        "--seconds-between-status-checks=1",
        # one thread per job, as the local run's rules have: two jobs share the 2-core test
        # node at once, and the float sums run in the same order as locally
        "--max-threads=1",
        "--retries=0",  # a failing step fails the test at once
        env=slurm_env,
        timeout=900,  # 6.6-11.2 min measured on 2 cores shared with heavy jobs (load 13-19)
    )
    output = on_slurm.stdout + on_slurm.stderr
    assert on_slurm.returncode == 0, output[-4000:]

    # Every rule's job went through sbatch, ran to COMPLETED under this run's job name, and
    # left its SLURM log and its rule log; GPU rules asked SLURM for a GPU, the others not.
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    submitted = dict(SUBMITTED.findall(output))
    jobs = queue(slurm_env)
    rule_logs = sorted((results / "smoke" / paper / "logs").glob("*.log"))
    assert len(submitted) == len(rule_logs) > 0, (submitted, rule_logs)
    for job_id, slurm_log in submitted.items():
        assert jobs[job_id]["state"] == "COMPLETED" and jobs[job_id]["name"] == run_id, jobs
        assert Path(slurm_log).is_file(), slurm_log
        rule = Path(slurm_log).relative_to(slurm_logs).parts[0].removeprefix("rule_")
        assert ("gpu" in jobs[job_id]["tres"]) == (rule in gpu_rules()), (rule, jobs[job_id])

    # The same numbers as a local run: every metric within its measured tolerance of the
    # paper's accepted local smoke baseline (which tests/test_papers_smoke.py holds a fresh
    # local run to), and every claim's verdict the one the baseline records.
    baseline = regress.read_baseline(REPO / "papers" / paper / "baselines" / "smoke.csv")
    claims = pd.read_csv(results / "smoke" / paper / "claims.csv")
    metrics = load_metrics(results / "smoke" / paper / "metrics.json")
    assert regress.compare(baseline, regress.observed(metrics, claims)) == []
