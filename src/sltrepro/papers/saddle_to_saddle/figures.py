"""Figures of the saddle_to_saddle paper, drawn from saved results (never trains)."""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from sltrepro import plots
from sltrepro.papers.saddle_to_saddle import pipeline
from sltrepro.plateaus import find_plateaus

# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = (
    "loss_curves",
    "staircase",
    "escape_times",
    "ntk_contrast",
    "saxe",
    "llc",
    "llc_traces",
    "structure",
    "width_sweep",
)


def _positive_time(arr):
    """Drop step 0 so time can go on a log axis."""
    keep = arr["time"] > 0
    return keep, arr["time"][keep]


def loss_curves(config, histories, path) -> None:
    """Loss vs time (log-log) for every gamma of the first seed, theory levels dashed,
    detected plateaus marked (dot at the plateau's middle, bar over its extent)."""
    levels = pipeline.plateau_levels(pipeline.singular_values(config["target_diag"]))
    fig, axes = plots.figure(1, len(histories), squeeze=False)
    for ax, (L, arr) in zip(axes[0], histories.items(), strict=True):
        keep, t = _positive_time(arr)
        first = arr["seed"] == arr["seed"][0]
        for b in np.nonzero(first)[0]:
            (line,) = ax.plot(t, arr["loss"][b, keep], label=f"γ={arr['gamma'][b]:g}")
            for p in find_plateaus(arr["time"], arr["loss"][b], **config["plateau"]):
                lo = max(arr["time"][p.start], t[0])
                ax.plot(
                    [lo, arr["time"][p.end]], [p.level] * 2, color=line.get_color(), lw=4, alpha=0.3
                )
                ax.plot(arr["time"][p.middle], p.level, "o", color=line.get_color(), ms=4)
        for level in levels[:-1]:
            ax.axhline(level, color="k", ls="--", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel="time t = lr·step", ylabel="loss", title=f"L={L}")
        ax.set_ylim(max(levels[-2] * 1e-3, 1e-3), levels[0] * 2)
        ax.legend(fontsize=6, loc="lower left")
    plots.save(fig, path)


def staircase(config, histories, path) -> None:
    """Singular values of A vs time at the largest gamma (first seed), targets dashed."""
    s = pipeline.singular_values(config["target_diag"])
    fig, axes = plots.figure(1, len(histories), squeeze=False)
    for ax, (L, arr) in zip(axes[0], histories.items(), strict=True):
        keep, t = _positive_time(arr)
        b = int(
            np.nonzero((arr["seed"] == arr["seed"][0]) & (arr["gamma"] == arr["gamma"].max()))[0][0]
        )
        for i in range(arr["svals"].shape[-1]):
            ax.plot(t, arr["svals"][b, keep, i], label=f"σ_{i + 1}(A)")
        for si in s:
            ax.axhline(si, color="k", ls="--", lw=0.6)
        ax.set(
            xscale="log",
            xlabel="time t",
            ylabel="singular value",
            title=f"L={L}, γ={arr['gamma'][b]:g}",
        )
    axes[0][0].legend(fontsize=7)
    plots.save(fig, path)


def escape_times(config, histories, path) -> None:
    """First escape time vs init scale: L=2 against ln(1/sigma), L>=3 log-log vs sigma."""
    s1 = pipeline.singular_values(config["target_diag"])[0]
    fig, axes = plots.figure(1, len(histories), squeeze=False)
    for ax, (L, arr) in zip(axes[0], histories.items(), strict=True):
        fit = arr["gamma"] > config["escape_fit_min_gamma"]
        t1 = arr["escape_time"][:, 0]
        x = np.log(1 / arr["sigma"]) if L == 2 else arr["sigma"]
        ax.scatter(x[fit], t1[fit], s=14, label="γ > fit threshold")
        ax.scatter(x[~fit], t1[~fit], s=14, marker="x", label="not fitted")
        ref = np.sort(x[fit])
        anchor = np.nanmedian(t1[fit])
        mid = np.median(ref)
        if L == 2:
            ax.plot(ref, anchor + (ref - mid) / s1, "k--", lw=0.8, label="slope 1/s₁")
            ax.set(xlabel="ln(1/σ)", ylabel="first escape time t₁")
        else:
            ax.plot(ref, anchor * (ref / mid) ** (-(L - 2)), "k--", lw=0.8, label=f"slope −{L - 2}")
            ax.set(xscale="log", yscale="log", xlabel="per-layer init std σ", ylabel="t₁")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"L={L}")
        ax.legend(fontsize=7)
    plots.save(fig, path)


def ntk_contrast(config, histories, path) -> None:
    """Smallest vs largest gamma of each depth (first seed), loss vs linear time."""
    fig, axes = plots.figure(1, len(histories), squeeze=False)
    for ax, (L, arr) in zip(axes[0], histories.items(), strict=True):
        first = arr["seed"] == arr["seed"][0]
        for gamma, label in [
            (arr["gamma"].min(), "NTK-like"),
            (arr["gamma"].max(), "saddle-to-saddle"),
        ]:
            b = int(np.nonzero(first & (arr["gamma"] == gamma))[0][0])
            ax.plot(arr["time"], arr["loss"][b], label=f"{label} (γ={gamma:g})")
        ax.set(yscale="log", xlabel="time t", ylabel="loss", title=f"L={L}")
        ax.set_ylim(1e-3, None)
        ax.legend(fontsize=7)
    plots.save(fig, path)


def saxe(table: pd.DataFrame, path) -> None:
    """Simulated two-layer mode strengths (solid) over Saxe's closed form (dashed)."""
    fig, (ax, err) = plots.figure(1, 2)
    for k, group in table.groupby("mode"):
        (line,) = ax.plot(group.time, group.simulated, label=f"mode {k} (s={group.s.iloc[0]:g})")
        ax.plot(group.time, group.closed_form, "k--", lw=0.7)
        err.plot(
            group.time, (group.simulated - group.closed_form) / group.s, color=line.get_color()
        )
    ax.set(xlabel="time t", ylabel="mode strength u(t)", title="GD (solid) vs closed form (dashed)")
    err.set(xlabel="time t", ylabel="(simulated − closed form) / s")
    ax.legend(fontsize=7)
    plots.save(fig, path)


def llc(table: pd.DataFrame, histories: dict, path) -> None:
    """LLC estimates along each trajectory with Aoyagi's lambda at the current rank; the
    training loss in grey on a second axis. Symlog y: estimates at saddles can be negative."""
    archs = list(table.arch.unique())
    fig, axes = plots.figure(1, len(archs), squeeze=False, width=5.0)
    for ax, arch in zip(axes[0], archs, strict=True):
        group = table[table.arch == arch].sort_values("time")
        ax.errorbar(
            group.time, group.llc_mean, yerr=group.llc_std, fmt="o-", ms=3, label="LLC estimate"
        )
        ax.step(
            group.time,
            group.aoyagi_lambda,
            where="post",
            color="k",
            ls="--",
            label="Aoyagi λ(rank)",
        )
        on = group[group.plateau_index >= 0]
        ax.plot(on.time, on.llc_mean, "s", mfc="none", mec="C3", ms=8, label="plateau middle")
        hist = histories[arch]
        twin = ax.twinx()
        keep = hist["time"] > 0
        twin.plot(hist["time"][keep], hist["loss"][keep], color="grey", alpha=0.5)
        twin.set(yscale="log", ylabel="training loss (grey)")
        twin.set_ylim(bottom=max(hist["loss"].min(), 1e-3 * hist["loss"][0]))
        twin.grid(False)
        ax.set(xscale="log", yscale="symlog", xlabel="time t", ylabel="λ", title=arch)
        ax.legend(fontsize=7, loc="lower right")
    plots.save(fig, path)


def traces(table: pd.DataFrame, llc_traces: dict, path) -> None:
    """Every LLC estimate's chains, one panel per (architecture, checkpoint), against
    Aoyagi's lambda at the checkpoint's rank."""
    panels = []
    for arch, arch_traces in llc_traces.items():
        rows = table[table.arch == arch]
        for (_, row), trace in zip(rows.iterrows(), arch_traces, strict=True):
            panels.append(
                plots.trace_panel(
                    f"{arch}, t={row.time:.3g}",
                    trace,
                    row,
                    reference=row.aoyagi_lambda,
                    reference_label="Aoyagi λ(rank)",
                )
            )
    plots.llc_traces(panels, path, cols=4)


def structure(table: pd.DataFrame, path) -> None:
    """Left: the escape path's statistics per layer, at init and on the first saddle (small
    init). Right: numerical rank of every layer at convergence, small vs large init."""
    fig, (ax, ranks) = plots.figure(1, 2)
    small = table[table["init"] == "small"]
    for stage, marker in (("init", "x"), ("plateau1", "o")):
        frame = small[small.stage == stage]
        for column, color in (("rank_one_ratio", "C0"), ("alignment", "C1"), ("imbalance", "C2")):
            ax.scatter(
                frame.layer,
                frame[column],
                marker=marker,
                color=color,
                s=18,
                label=f"{column} ({stage})",
            )
    ax.set(yscale="log", xlabel="layer l", ylabel="value", title="init (x) vs saddle 1 (o)")
    ax.legend(fontsize=6)
    final = table[table.stage == "final"]
    for offset, (kind, group) in zip((-0.1, 0.1), final.groupby("init"), strict=False):
        ranks.scatter(group.layer + offset, group["rank"], s=18, label=f"{kind} init")
    ranks.set(xlabel="layer l", ylabel="numerical rank of W_l at convergence")
    for panel in (ax, ranks):
        panel.set_xticks(sorted(table.layer.unique()))
    ranks.legend(fontsize=7)
    plots.save(fig, path)


def width_sweep(table: pd.DataFrame, path) -> None:
    """Distance travelled and first escape time against width (log-log), per regime."""
    fig, axes = plots.figure(1, 2)
    for ax, column in zip(axes, ("distance", "escape_time"), strict=True):
        for regime, group in table.groupby("regime"):
            label = f"{regime} (γ={group.gamma.iloc[0]:g})"
            ax.scatter(group.width, group[column], s=14, label=label)
        ax.set(xscale="log", yscale="log", xlabel="width w", ylabel=column)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    plots.save(fig, path)


def draw_all(
    config,
    histories: dict,
    saxe_table: pd.DataFrame,
    llc_table: pd.DataFrame,
    llc_histories: dict,
    llc_traces: dict,
    structure_table: pd.DataFrame,
    width_table: pd.DataFrame,
    outdir: Path,
) -> None:
    """Every figure of :data:`FIGURES` into ``outdir``: ``histories`` maps depth -> training
    arrays, ``llc_histories`` architecture -> the arrays of its LLC trajectory and
    ``llc_traces`` architecture -> the (K, C, D) traces of its K estimates."""
    loss_curves(config, histories, outdir / "loss_curves.png")
    staircase(config, histories, outdir / "staircase.png")
    escape_times(config, histories, outdir / "escape_times.png")
    ntk_contrast(config, histories, outdir / "ntk_contrast.png")
    saxe(saxe_table, outdir / "saxe.png")
    llc(llc_table, llc_histories, outdir / "llc.png")
    traces(llc_table, llc_traces, outdir / "llc_traces.png")
    structure(structure_table, outdir / "structure.png")
    width_sweep(width_table, outdir / "width_sweep.png")
