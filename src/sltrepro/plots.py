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


def llc_traces(panels: list[dict], path: str | Path, *, cols: int = 3) -> Path:
    """One panel per LLC estimate, so a reader sees which LLC numbers to trust: every
    chain's trace nbeta * (L(w) - L(w*)) against the draw (one colour per chain), the
    estimate (black) and, when given, a reference value (grey, dashed), with R-hat, bulk
    ESS and the health verdict above.

    ``panels``: dicts with ``title``, ``trace`` ((C, D) array, one row per chain),
    ``estimate``, ``rhat``, ``ess_bulk``, ``healthy`` and optionally ``reference`` and
    ``reference_label``.
    """
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = figure(rows, cols, width=4.0, height=2.8, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for chain in panel["trace"]:
            ax.plot(chain, lw=0.6, alpha=0.8)
        if panel.get("reference") is not None:
            label = panel.get("reference_label", "reference")
            ax.axhline(panel["reference"], color="0.45", ls="--", lw=1.2, label=label)
        ax.axhline(panel["estimate"], color="k", lw=1.2, label="estimate")
        verdict = "healthy" if panel["healthy"] else "NOT healthy"
        ax.set_title(
            f"{panel['title']}: R-hat {panel['rhat']:.2f}, ESS {panel['ess_bulk']:.0f}, {verdict}",
            fontsize=8,
        )
        ax.set_xlabel("draw")
        ax.set_ylabel("nbeta (L(w) - L(w*))")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    return save(fig, path)
