"""Figures of the language-model half, in the style of Hoogland et al. 2024 (Figs. 1, 4, 5):
LLC and validation loss against log step with the stages shaded, the behavioural and
structural metrics (bigram, n-gram, previous-token, induction and ICL scores), the
essential-dynamics PC plots, the chains of the LLC estimates (which ones to trust), and the
weight-refined LLC of every head (Wang et al. 2024, Fig. 1).
Draws the analysis tables only.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from sltrepro import plots

from .figures import draw_replicates, pc_pairs, shade_stages


def llc_and_loss(
    table: pd.DataFrame,
    fit: pd.DataFrame,
    stages: list[dict],
    path: Path,
    replicates: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> None:
    """The reference seed's LLC (bars: the chains' spread), its GP fit and validation loss
    with its stages shaded; ``replicates``: {seed: (table, fit)} of the later seeds."""
    fig, (ax_llc, ax_loss) = plots.figure(1, 2, width=5.0)
    x = table["step"] + 1
    ax_llc.errorbar(x, table["llc"], yerr=table["llc_std"], fmt="o", ms=3, lw=0.8, label="LLC")
    ax_llc.plot(np.exp(fit["log_step"]), fit["llc_fit"], "k-", lw=1, label="GP fit")
    draw_replicates(ax_llc, ax_loss, replicates, "val_loss")
    ax_llc.set(xlabel="step + 1", ylabel=r"$\hat\lambda$", title="LLC (attention-only LM)")
    ax_llc.legend(fontsize=7, loc="lower right")
    ax_loss.plot(x, table["val_loss"], "-")
    ax_loss.set(xlabel="step + 1", ylabel="nats / token", title="Validation loss")
    for ax in (ax_llc, ax_loss):
        shade_stages(ax, stages)
    plots.save(fig, path)


def head_lines(ax, table: pd.DataFrame, prefix: str, title: str) -> None:
    """One line per head whose columns start with ``prefix`` (e.g. ``induction_l1``)."""
    x = table["step"] + 1
    for col in sorted(c for c in table.columns if c.startswith(prefix + "h")):
        ax.plot(x, table[col], lw=1, label=col.split("_")[-1])
    ax.set(title=title, ylim=(0, 1))
    ax.legend(fontsize=6, ncol=2)


def metric_panels(table: pd.DataFrame, stages: list[dict], n_layers: int, path: Path) -> None:
    fig, axes = plots.figure(2, 3, width=4.0, height=3.0)
    axes = axes.ravel()
    x = table["step"] + 1
    axes[0].plot(x, table["bigram_score"])
    axes[0].set(title="Bigram score (CE vs bigram distr.)", ylabel="nats")
    axes[1].plot(x, table["ngram_score"])
    axes[1].set(title="n-gram score (loss on top n-grams)", ylabel="nats")
    axes[2].plot(x, table["icl_score"])
    axes[2].axhline(0, color="k", lw=0.6)
    axes[2].set(title="ICL score (late minus early token)", ylabel="nats")
    head_lines(axes[3], table, "prev_l0", "Previous-token score, layer 0")
    head_lines(
        axes[4], table, f"induction_l{n_layers - 1}", f"Induction score, layer {n_layers - 1}"
    )
    positions = sorted(
        (c for c in table.columns if c.startswith("loss_t")), key=lambda c: int(c[6:])
    )
    for c in positions[:: max(len(positions) // 6, 1)]:
        axes[5].plot(x, table[c], lw=1, label=f"t={c[6:]}")
    axes[5].set(title="Loss by token position", ylabel="nats")
    axes[5].legend(fontsize=6, ncol=2)
    for ax in axes:
        shade_stages(ax, stages)
        ax.set_xlabel("step + 1")
    plots.save(fig, path)


def llc_trace_panels(table: pd.DataFrame, traces: np.ndarray, path: Path, panels: int = 9):
    """The chains of ``panels`` LLC estimates, at checkpoints evenly spaced in index from
    the first to the last (traces: (T, C, draws), rows in the order of ``table``)."""
    picks = np.unique(np.linspace(0, len(table) - 1, min(panels, len(table))).round().astype(int))
    plots.llc_traces(
        [
            plots.trace_panel(
                f"step {int(table['step'].iloc[i])}",
                traces[i],
                table.iloc[i],
                estimate_key="llc",
                prefix="llc_",
            )
            for i in picks
        ],
        path,
    )


HEAD_COLOURS = {"induction": "C3", "previous-token": "C0", "other": "0.55"}
HEAD_STYLES = ("-", "--", ":", "-.")  # heads of one type apart


def head_llc_panels(heads: pd.DataFrame, stages: list[dict], n_layers: int, path: Path) -> None:
    """The weight-refined LLC of every head against step, one panel per layer, coloured by
    the head's type (Wang et al. 2024, Fig. 1) and dashed by its index; bars: one standard
    error of the chains; hollow markers: estimates that fail the health gate."""
    fig, axes = plots.figure(1, n_layers, width=4.5)
    for layer, ax in zip(range(n_layers), np.atleast_1d(axes), strict=True):
        for (head, kind), rows in heads[heads["layer"] == layer].groupby(["head", "type"]):
            x = rows["step"] + 1
            colour, style = HEAD_COLOURS[kind], HEAD_STYLES[head % len(HEAD_STYLES)]
            ax.errorbar(
                x,
                rows["wrllc"],
                yerr=rows["wrllc_se"],
                color=colour,
                ls=style,
                lw=1,
                label=f"h{head} ({kind})",
            )
            bad = ~rows["llc_healthy"].astype(bool)
            ax.plot(x[bad], rows["wrllc"][bad], "o", mfc="white", mec=colour, ms=4)
        ax.set(xlabel="step + 1", ylabel=r"wrLLC $\hat\lambda$", title=f"Heads of layer {layer}")
        ax.legend(fontsize=6)
        shade_stages(ax, stages)
    plots.save(fig, path)


# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = ("llc_stages", "metrics", "essential_dynamics", "llc_traces", "head_llc")


def draw_all(
    table: pd.DataFrame,
    fit: pd.DataFrame,
    stages: list[dict],
    ed: pd.DataFrame,
    traces: np.ndarray,
    heads: pd.DataFrame,
    n_layers: int,
    outdir: Path,
    replicates: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> None:
    """The LM figures of :data:`FIGURES` (from the reference seed's analysis tables, the
    (T, C, draws) LLC traces and the heads' wrLLC table; the later seeds' tables and fits
    beside its LLC curve) into ``outdir``."""
    llc_and_loss(table, fit, stages, outdir / "llc_stages.png", replicates)
    metric_panels(table, stages, n_layers, outdir / "metrics.png")
    pc_pairs(ed, stages, outdir / "essential_dynamics.png")
    llc_trace_panels(table, traces, outdir / "llc_traces.png")
    head_llc_panels(heads, stages, n_layers, outdir / "head_llc.png")
