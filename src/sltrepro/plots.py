"""Shared figure style and saving; each paper's figures module draws with these."""

import textwrap
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


def trace_panel(
    title: str,
    trace,
    row,
    *,
    estimate_key: str = "llc_mean",
    reference: float | None = None,
    reference_label: str = "reference",
    prefix: str = "",
) -> dict:
    """One panel of :func:`llc_traces` from an estimate's (C, D) ``trace`` and its summary
    ``row`` (a dict or table row with ``estimate_key``, ``rhat``, ``ess_bulk``, ``healthy``,
    as :meth:`sltrepro.llc.LLCResult.summary_row` writes them, with its ``prefix``)."""

    def field(name: str):
        return row.get(name if name.startswith(prefix) else prefix + name)

    return {
        "title": title,
        "trace": trace,
        "estimate": row[estimate_key],
        "rhat": field("rhat"),
        "ess_bulk": field("ess_bulk"),
        "healthy": bool(field("healthy")),
        "reference": reference,
        "reference_label": reference_label,
        "failed_checks": failed_checks(field("health_reasons")),
    }


def failed_checks(health_reasons) -> str:
    """The failed checks of a ``health_reasons`` string without their advice, e.g.
    "bulk ESS 52.7 < 100, trace drift 0.29 > 0.25" ("" when healthy or missing)."""
    if not isinstance(health_reasons, str):
        return ""
    parts = health_reasons.split("; ")
    return ", ".join(part.split(":")[0] for part in parts if ":" in part)


def llc_traces(panels: list[dict], path: str | Path, *, cols: int = 3) -> Path:
    """One panel per LLC estimate, so a reader sees which LLC numbers to trust: every
    chain's trace nbeta * (L(w) - L(w*)) against the draw (one colour per chain), the
    estimate (black) and, when given, a reference value (grey, dashed), with R-hat, bulk
    ESS and the health verdict above.

    ``panels``: dicts as :func:`trace_panel` builds them: ``title``, ``trace`` ((C, D)
    array, one row per chain), ``estimate``, ``rhat``, ``ess_bulk``, ``healthy`` and
    optionally ``reference``, ``reference_label`` and ``failed_checks`` (a second title
    line).
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
        title = (
            f"{panel['title']}: R-hat {panel['rhat']:.2f}, ESS {panel['ess_bulk']:.0f}, {verdict}"
        )
        if panel.get("failed_checks"):
            title += "\n" + textwrap.shorten(panel["failed_checks"], width=70, placeholder=" ...")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("draw")
        ax.set_ylabel("nbeta (L(w) - L(w*))")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    return save(fig, path)
