"""Shared figure style and saving; each paper's figures module draws with these."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402


def style() -> None:
    """One look for every figure of the harness."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.5, height: float = 3.5, **kw):
    """A figure with a grid of axes, each ``width`` x ``height`` inches."""
    style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)


def save(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Save as PNG (creating folders) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
