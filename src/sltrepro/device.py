"""Pick the torch device and thread count a step runs with."""

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` uses CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def set_threads(threads: int) -> None:
    """Match torch's intra-op threads to the cores Snakemake gave the rule."""
    torch.set_num_threads(max(1, int(threads)))
