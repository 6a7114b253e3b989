"""Provenance written beside every result: what code, config, seeds and machine made it."""

import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .paths import repo_root

PACKAGES = ("sltrepro", "torch", "numpy", "pandas", "scikit-learn", "snakemake")


def git_state() -> dict:
    """Commit hash and whether the working tree differs from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info(device="cpu") -> dict:
    """Where a result was computed. The CPU capability matters: it selects the rounding path."""
    # imported here, not at the top: the claims, report and summary jobs of every DAG import
    # this module, and torch's import is most of their run time
    import torch

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def find_seeds(*mappings: dict) -> dict:
    """Every key with 'seed' in its name, from config and options alike."""
    return {k: v for m in mappings for k, v in m.items() if "seed" in k.lower()}


def write(path: str | Path, **fields) -> dict:
    """Write provenance.json with git state, versions and host, plus ``fields``."""
    device = fields.pop("device", "cpu")
    record = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "versions": package_versions(),
        "host": host_info(device),
        **fields,
    }
    Path(path).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record
