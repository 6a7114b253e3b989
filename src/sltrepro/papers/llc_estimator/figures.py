"""Figures of the llc_estimator paper, drawn from saved tables (never trains)."""

from pathlib import Path

import numpy as np
import pandas as pd

from sltrepro import plots

# The figures the figures step writes (as <name>.png); the workflow declares them from here.
FIGURES = ("estimates", "calibration", "traces")


def estimates_figure(table: pd.DataFrame, path: Path) -> Path:
    """Estimated vs true lambda, mean +- std over seeds; Table 1 rows with the paper's SGLD
    column beside ours."""
    fig, axes = plots.figure(1, 2, width=4.8)
    nc = table[table["kind"] == "normal_crossing"].reset_index(drop=True)
    ax = axes[0]
    pos = np.arange(len(nc))
    ax.errorbar(pos - 0.1, nc["mean"], yerr=nc["std"], fmt="o", capsize=3, label="ours")
    ax.errorbar(
        pos + 0.1, nc["paper_mean"], yerr=nc["paper_std"], fmt="s", capsize=3, label="paper SGLD"
    )
    ax.scatter(pos, nc["truth"], marker="_", s=400, color="k", label="true lambda", zorder=5)
    ax.scatter(pos, nc["reference_mean"], marker="x", color="C3", zorder=6,
               label="quadrature (finite nbeta)")  # fmt: skip
    ax.set_xticks(pos, nc["name"], rotation=30, fontsize=7)
    ax.set_ylabel("lambda_hat (mean +- std over seeds)")
    ax.set_title("Table 1 and the two-minimum potential, n = 1000", fontsize=9)
    ax.legend(fontsize=8)
    dln = table[table["kind"] == "dln"]
    ax = axes[1]
    ax.errorbar(dln["truth"], dln["mean"], yerr=dln["std"], fmt="o", capsize=3)
    hi = float(max(dln["truth"].max(), (dln["mean"] + dln["std"]).max())) * 1.1
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="y = x")
    ax.fill_between([0, hi], [0, 0.85 * hi], [0, 1.15 * hi], color="grey", alpha=0.2,
                    label="+-15%")  # fmt: skip
    for row in dln.itertuples():
        ax.annotate(row.name, (row.truth, row.mean), fontsize=7, xytext=(3, -10),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("Aoyagi lambda")
    ax.set_ylabel("lambda_hat")
    ax.set_title("RRR / DLN at a true parameter")
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def calibration_figure(table: pd.DataFrame, summary: dict, path: Path) -> Path:
    """LLC vs step size, one line per nbeta; unstable settings hollow; MALA acceptance below."""
    fig, (top, bottom) = plots.figure(2, 1, width=5.5, height=3.0, sharex=True)
    for factor, part in table.groupby("nbeta_factor"):
        part = part.sort_values("step_size")
        line = top.plot(part["step_size"], part["llc_mean"], "-", label=f"nbeta x {factor:g}")
        color = line[0].get_color()
        stable = part[part["stable"]]
        top.scatter(stable["step_size"], stable["llc_mean"], color=color, zorder=3)
        shaky = part[~part["stable"]]
        top.scatter(shaky["step_size"], shaky["llc_mean"], facecolors="none", edgecolors=color)
        bottom.plot(part["step_size"], part["mala_acceptance"], "o-", color=color)
    top.axhline(summary["truth"], color="k", ls="--", lw=1, label="Aoyagi lambda")
    if summary.get("best_step_size"):
        for ax in (top, bottom):
            ax.axvline(summary["best_step_size"], color="grey", ls=":", lw=1)
    top.set_xscale("log")
    top.set_ylabel("lambda_hat")
    top.set_title(f"Calibration on {summary['case']} (filled: stable)")
    top.legend(fontsize=7)
    bottom.set_xlabel("step size eps")
    bottom.set_ylabel("MALA acceptance")
    return plots.save(fig, path)


def trace_figure(estimates: list[dict], path: Path) -> Path:
    """The first seed's LLC trace of every chain, one panel per case, against the true
    lambda."""
    panels = [
        plots.trace_panel(
            est["name"],
            est["runs"][0]["llc_trace"],
            est["runs"][0],
            reference=est["truth"],
            reference_label="true lambda",
        )
        for est in estimates
    ]
    return plots.llc_traces(panels, path)


def draw_all(
    table: pd.DataFrame,
    estimates: list[dict],
    calibration: pd.DataFrame,
    calibration_summary: dict,
    outdir: Path,
) -> None:
    """Every figure of :data:`FIGURES` into ``outdir``."""
    estimates_figure(table, outdir / "estimates.png")
    calibration_figure(calibration, calibration_summary, outdir / "calibration.png")
    trace_figure(estimates, outdir / "traces.png")
