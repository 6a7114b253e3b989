"""Shared fixtures: the repository, a throw-away copy of the harness with a toy paper, and a
way to run Snakemake and the ``sltrepro`` command as a user would."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOY = Path(__file__).resolve().parent / "toy"
BIN = Path(sys.executable).parent


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 900):
    """Run a command, capturing text output; never raises on a non-zero exit."""
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snakemake(*args, cwd: Path = REPO, env: dict | None = None, timeout: int = 900):
    return run([BIN / "snakemake", *args], cwd=cwd, env=env, timeout=timeout)


def planned_rules(*args, cwd: Path = REPO, env: dict | None = None) -> set[str]:
    """The rules a dry run with ``args`` would run (the generic final rules left out)."""
    dry = snakemake("-n", *args, cwd=cwd, env=env)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr
    lines = (dry.stdout + dry.stderr).splitlines()
    rules = {line.split()[1].rstrip(":") for line in lines if line.startswith("rule ")}
    return rules - {"all", "claims", "report", "summary"}


@pytest.fixture
def toy_root(tmp_path, monkeypatch) -> Path:
    """A copy of the harness (Snakefile, common rules) whose only paper is tests/toy."""
    root = tmp_path / "repo"
    (root / "workflows").mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", root)
    for shared in ("common.smk", "final.smk"):
        shutil.copy(REPO / "workflows" / shared, root / "workflows")
    for folder in ("schemas", "envs", "report"):
        shutil.copytree(REPO / "workflows" / folder, root / "workflows" / folder)
    shutil.copytree(REPO / "profiles" / "default", root / "profiles" / "default")
    shutil.copy(TOY / "workflows" / "toy.smk", root / "workflows")
    shutil.copytree(TOY / "workflows" / "report", root / "workflows" / "report", dirs_exist_ok=True)
    shutil.copytree(TOY / "papers", root / "papers")
    env = {"SLTREPRO_ROOT": str(root), "PYTHONPATH": str(TOY)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(TOY))
    return root


@pytest.fixture
def one_thread():
    """Tiny models are overhead-bound; one torch thread avoids contention on shared CI cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
