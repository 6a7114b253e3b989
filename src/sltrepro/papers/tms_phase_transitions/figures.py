"""Figures of the tms_phase_transitions paper, drawn from saved results (never trains)."""

from pathlib import Path

import numpy as np
import pandas as pd

from sltrepro import plots
from sltrepro.papers.tms_phase_transitions import pipeline

# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = ("kgon_gallery", "occupancy", "sgd_loss_llc", "llc_traces")


def kgon_gallery(config, critical: pd.DataFrame, path) -> None:
    """Each critical point's weight columns as arrows in the hidden plane; the bias sign of
    each column by colour (blue > 0, red <= 0); dead/positive zero columns listed."""
    points = pipeline.critical_points(config)
    ncols = min(6, len(points))
    nrows = -(-len(points) // ncols)
    fig, axes = plots.figure(nrows, ncols, width=2.4, height=2.7, squeeze=False)
    for ax in axes.flat[len(points) :]:
        ax.set_visible(False)
    for ax, point in zip(axes.flat, points, strict=False):
        weight, bias = (t.numpy() for t in point.params())
        for j in range(point.c):
            colour = "tab:blue" if bias[j] > 0 else "tab:red"
            ax.annotate(
                "",
                xy=weight[:, j],
                xytext=(0, 0),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5},
            )
        row = critical[(critical.name == point.name) & (critical.c == point.c)].iloc[0]
        ax.set_title(f"{point.name} (c={point.c})\nL={row.loss:.5f}", fontsize=9)
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    plots.save(fig, path)


def occupancy(config, occ: pd.DataFrame, predicted, path) -> None:
    """Posterior occupancy of k = 4, 5, 6 live columns against n (error bars: standard
    errors over chains), with the predicted 5 -> 6 transition."""
    fig, ax = plots.figure(1, 1, width=6, height=4)
    occ = occ.sort_values("n")
    for k in (4, 5, 6):
        err = occ["occ6_se"] if k == 6 else None
        ax.errorbar(occ.n, occ[f"occ{k}"], yerr=err, marker="o", label=f"{k}-gon phase")
    for start in (5, 6):
        ax.plot(
            occ.n,
            occ[f"occ6_start{start}"],
            ":",
            alpha=0.6,
            label=f"6-gon, chains from {start}-gons",
        )
    if predicted:
        ax.axvline(predicted, color="k", ls="--", label=f"predicted n = {predicted:.0f}")
    ax.set_xscale("log")
    ax.set_xlabel("sample size n")
    ax.set_ylabel("posterior occupancy")
    ax.legend(fontsize=7)
    plots.save(fig, path)


def sgd_curves(config, arrays: dict, plateaus: pd.DataFrame, llc: pd.DataFrame, path) -> None:
    """Population loss over SGD steps for the LLC trajectories (plateaus labelled by their
    phase), and the LLC at each plateau."""
    seeds = sorted(llc.seed.unique())[:6] if len(llc) else list(arrays["seed"][:6])
    fig, (ax_loss, ax_llc) = plots.figure(1, 2, width=5.5, height=4)
    steps = np.maximum(arrays["steps"], 1)
    for seed in seeds:
        s = int(np.nonzero(arrays["seed"] == seed)[0][0])
        (line,) = ax_loss.plot(steps, arrays["loss"][s], lw=1)
        for row in plateaus[plateaus.seed == seed].itertuples():
            ax_loss.annotate(
                row.phase,
                (steps[row.middle], row.level),
                fontsize=7,
                color=line.get_color(),
                textcoords="offset points",
                xytext=(0, 4),
            )
        sub = llc[llc.seed == seed].sort_values("index")
        ax_llc.errorbar(
            sub.step.clip(lower=1),
            sub.llc_mean,
            yerr=sub.llc_se,
            marker="o",
            color=line.get_color(),
        )
        for row in sub.itertuples():
            ax_llc.annotate(
                row.phase,
                (max(row.step, 1), row.llc_mean),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    for ax in (ax_loss, ax_llc):
        ax.set_xscale("log")
        ax.set_xlabel("SGD step")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("population loss")
    ax_llc.set_ylabel("LLC at plateau")
    plots.save(fig, path)


def draw_all(
    config,
    critical: pd.DataFrame,
    occ: pd.DataFrame,
    predicted_n,
    arrays: dict,
    plateaus: pd.DataFrame,
    sgd_llc: pd.DataFrame,
    llc_tables: list[pd.DataFrame],
    llc_traces: list[np.ndarray],
    outdir: Path,
) -> None:
    """Every figure of :data:`FIGURES` into ``outdir``; ``predicted_n`` is the metric
    ``bayes_predicted_n`` (None when missing), ``arrays`` the SGD trajectories,
    ``llc_tables`` and ``llc_traces`` each k-gon's estimates and its first seed's chains."""
    kgon_gallery(config, critical, outdir / "kgon_gallery.png")
    occupancy(config, occ, predicted_n, outdir / "occupancy.png")
    sgd_curves(config, arrays, plateaus, sgd_llc, outdir / "sgd_loss_llc.png")
    plots.llc_traces(
        [
            plots.trace_panel(
                f"{table['point'].iloc[0]}, seed {table['seed'].iloc[0]}", trace, table.iloc[0]
            )
            for table, trace in zip(llc_tables, llc_traces, strict=True)
        ],
        outdir / "llc_traces.png",
    )
