"""Atomic save and resume of training state, so an interrupted run restarts where it was."""

import os
from pathlib import Path

import torch


def save(path: str | Path, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict | None:
    """The saved state, or None when there is no checkpoint yet."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
