"""Figures of the regression half, in the style of Hoogland et al. 2024 (Figs. 1-3): LLC and
loss against log step with the stages shaded, behavioural / structural metrics, and the
essential-dynamics PC plots with the LLC boundaries marked. Reads the analysis outputs only.

``shade_stages`` and ``pc_pairs`` are generic (stages as dicts from ``stages.json``) so the
language-model half can draw its figures the same way.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from sltrepro import plots

STAGE_COLOURS = {"A": "#4c72b0", "B": "#dd8452"}


def shade_stages(ax, stages: list[dict]) -> None:
    """Shade each stage (A blue, B orange) and draw its boundaries; x axis is step + 1, log."""
    for i, s in enumerate(stages):
        ax.axvspan(s["start"] + 1, s["end"] + 1, color=STAGE_COLOURS[s["type"]], alpha=0.12)
        mid = np.sqrt((s["start"] + 1) * (s["end"] + 1))
        ax.text(
            mid,
            0.97,
            f"{i + 1}{s['type']}",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=8,
        )
        if i:
            ax.axvline(s["start"] + 1, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")


def draw_replicates(ax_llc, ax_loss, replicates: dict | None, loss_column: str) -> None:
    """The later seeds ({seed: (table, fit)}) as thin coloured GP fits with their LLC
    estimates, and their ``loss_column`` beside the main run's loss."""
    for i, (seed, (seed_table, seed_fit)) in enumerate((replicates or {}).items()):
        colour = f"C{i + 2}"
        ax_llc.plot(seed_table["step"] + 1, seed_table["llc"], "^", ms=2.5, color=colour)
        ax_llc.plot(
            np.exp(seed_fit["log_step"]),
            seed_fit["llc_fit"],
            "-",
            lw=0.8,
            color=colour,
            label=f"seed {seed}",
        )
        ax_loss.plot(seed_table["step"] + 1, seed_table[loss_column], "-", lw=0.8, color=colour)


def llc_and_loss(
    table: pd.DataFrame,
    fit: pd.DataFrame,
    stages: list[dict],
    path: Path,
    control: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    replicates: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> None:
    """``control``: the learning-rate control's checkpoint table and GP fit, drawn beside
    the main run (grey) when given; ``replicates``: {seed: (table, fit)} of the later
    seeds, drawn as thin coloured fits with their estimates."""
    fig, (ax_llc, ax_loss) = plots.figure(1, 2, width=5.0)
    x = table["step"] + 1
    ax_llc.plot(x, table["llc"], "o", ms=3, label="LLC (mean of per-token)")
    ax_llc.plot(np.exp(fit["log_step"]), fit["llc_fit"], "k-", lw=1, label="GP fit")
    draw_replicates(ax_llc, ax_loss, replicates, "loss")
    if control is not None:
        control_table, control_fit = control
        ax_llc.plot(
            control_table["step"] + 1,
            control_table["llc"],
            "s",
            ms=2.5,
            color="grey",
            label="LR control",
        )
        ax_llc.plot(
            np.exp(control_fit["log_step"]),
            control_fit["llc_fit"],
            "-",
            lw=1,
            color="grey",
            label="LR control GP fit",
        )
        ax_loss.plot(
            control_table["step"] + 1, control_table["loss"], "-", color="grey", label="LR control"
        )
    ax_llc.set(xlabel="step + 1", ylabel=r"$\hat\lambda$", title="LLC")
    ax_llc.legend(fontsize=7, loc="lower right")
    ax_loss.plot(x, table["loss"], "-", label="test loss")
    ax_loss.set(xlabel="step + 1", ylabel="MSE", title="Loss")
    if control is not None:
        ax_loss.legend(fontsize=7)
    for ax in (ax_llc, ax_loss):
        shade_stages(ax, stages)
    plots.save(fig, path)


def metric_panels(table: pd.DataFrame, base: pd.DataFrame, stages: list[dict], path: Path) -> None:
    fig, axes = plots.figure(2, 3, width=4.0, height=3.0)
    axes = axes.ravel()
    x = table["step"] + 1
    positions = [c for c in table.columns if c.startswith("loss_pos")]
    for c in positions:
        axes[0].plot(x, table[c], lw=1, label=c.replace("loss_pos", "k="))
    axes[0].axhline(base["ridge"].mean(), color="k", ls=":", lw=1, label="ridge (mean)")
    axes[0].set(ylabel="MSE", title="Loss by context position")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].plot(x, table["icl_score"])
    axes[1].axhline(base["ridge"].iloc[-1] - base["ridge"].iloc[0], color="k", ls=":", lw=1)
    axes[1].set(title="ICL score (loss k=K minus k=1)")
    axes[2].plot(x, table["yhat_sq"])
    axes[2].set(title=r"$E[\hat y^2]$ (0 = prior mean)")
    axes[3].plot(x, table["ln_final_collapse"], label="final LN")
    axes[3].plot(x, table["ln_all_collapse"], label="all LNs")
    axes[3].set(title="LayerNorm weight collapse")
    axes[3].legend(fontsize=7)
    for c in (c for c in table.columns if c.startswith("embed_sv")):
        axes[4].plot(x, table[c], lw=1)
    axes[4].set(title="Token embedding singular values")
    axes[5].plot(base["position"], base["ridge"], "o-", label="ridge (Bayes)")
    axes[5].plot(base["position"], base["ols"], "s-", label="OLS")
    axes[5].plot(base["position"], base["prior_mean"], "^-", label="prior mean 0")
    last = [table[c].iloc[-1] for c in positions]
    axes[5].plot(base["position"], last, "kx-", label="final model")
    axes[5].set(yscale="log", xlabel="context position k", title="Per-position MSE")
    axes[5].legend(fontsize=7)
    for ax in axes[:5]:
        shade_stages(ax, stages)
        ax.set_xlabel("step + 1")
    plots.save(fig, path)


def pc_pairs(ed: pd.DataFrame, stages: list[dict], path: Path) -> None:
    """PC_i vs PC_j for the first three pairs; colour = log step, boundaries as stars,
    turning points of the trajectory as open circles."""
    pcs = [c for c in ed.columns if c.startswith("pc")]
    pairs = [(a, b) for i, a in enumerate(pcs) for b in pcs[i + 1 :]][:3]
    fig, axes = plots.figure(1, max(len(pairs), 1), width=4.0, squeeze=False)
    steps = ed["step"].to_numpy()
    log_t = np.log1p(steps)
    bounds = [s["start"] for s in stages[1:]]
    for ax, (a, b) in zip(axes[0], pairs, strict=False):
        ax.plot(ed[a], ed[b], "-", color="grey", lw=0.6)
        sc = ax.scatter(ed[a], ed[b], c=log_t, cmap="viridis", s=10)
        turn = ed["turning_point"].astype(bool)
        ax.scatter(
            ed[a][turn], ed[b][turn], s=60, facecolors="none", edgecolors="r", label="turning point"
        )
        for bnd in bounds:
            i = int(np.argmin(np.abs(log_t - np.log1p(bnd))))
            ax.plot(ed[a].iloc[i], ed[b].iloc[i], "k*", ms=10)
        ax.set(xlabel=a.upper(), ylabel=b.upper())
    axes[0][0].legend(fontsize=7)
    fig.colorbar(sc, ax=axes[0][-1], label="log(step + 1)")
    plots.save(fig, path)


def trace_figure(llc: pd.DataFrame, traces: np.ndarray, path: Path) -> None:
    """Every checkpoint's LLC chains (the trace of the mean per-token LLC), by step."""
    order = np.argsort(llc["step"].to_numpy(), kind="stable")
    panels = [
        plots.trace_panel(f"step {llc['step'].iloc[i]}", traces[i], llc.iloc[i], estimate_key="llc")
        for i in order
    ]
    plots.llc_traces(panels, path, cols=5)


# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = ("llc_stages", "llc_traces", "metrics", "essential_dynamics")


def draw_all(
    table: pd.DataFrame,
    fit: pd.DataFrame,
    stages: list[dict],
    base: pd.DataFrame,
    ed: pd.DataFrame,
    llc: pd.DataFrame,
    llc_traces: np.ndarray,
    outdir: Path,
    control: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    replicates: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> None:
    """The figures of one seed (its checkpoint table, GP fit, stages and essential
    dynamics, the baselines, and its LLC rows with their (M, C, D) traces, in the same
    order) into ``outdir``; ``control``: the learning-rate control's table and fit;
    ``replicates``: {seed: (table, fit)} of the later seeds, beside it in llc_stages."""
    llc_and_loss(table, fit, stages, outdir / "llc_stages.png", control, replicates)
    trace_figure(llc, llc_traces, outdir / "llc_traces.png")
    metric_panels(table, base, stages, outdir / "metrics.png")
    pc_pairs(ed, stages, outdir / "essential_dynamics.png")
