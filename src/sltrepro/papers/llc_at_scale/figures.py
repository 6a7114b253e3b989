"""Figures of Furman & Lau (2024) from the collected table (never computes estimates)."""

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from sltrepro import plots
from sltrepro.papers.llc_at_scale.pipeline import PAPER_BAND

# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = (
    "lambda_hat_vs_lambda",
    "rel_error_vs_params",
    "sgd_vs_true",
    "speed",
    "llc_traces_true",
    "llc_traces_exact",
    "llc_traces_sgd",
)

#: What each trace figure's estimates sample, for its panel titles.
WHERE = {"true": "at w*", "exact": "at w*, exact data", "sgd": "at the SGD endpoint"}


def _diagonal(ax, values) -> None:
    lo, hi = np.nanmin(values), np.nanmax(values)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")


def _params_colour(ax, fig, table: pd.DataFrame, x, y):
    norm = mcolors.LogNorm(table["num_params"].min(), max(table["num_params"].max(), 2))
    points = ax.scatter(x, y, c=table["num_params"], norm=norm, cmap="viridis", s=18)
    fig.colorbar(points, ax=ax, label="parameters")


def lambda_hat_vs_lambda(table: pd.DataFrame, path) -> None:
    """Fig. 1: lambda_hat at the true parameter against Aoyagi's lambda, log-log."""
    fig, ax = plots.figure(width=5.5)
    # Bars: the spread over chains (std); a single-chain run has none.
    ax.errorbar(
        table["lambda"],
        table["lambda_hat_true"],
        yerr=table["std_true"],
        fmt="none",
        ecolor="grey",
        lw=0.8,
    )
    _params_colour(ax, fig, table, table["lambda"], table["lambda_hat_true"])
    _diagonal(ax, table["lambda"])
    missing = int(table["lambda_hat_true"].isna().sum())
    ax.set(xscale="log", yscale="log", xlabel=r"$\lambda$ (Aoyagi)", ylabel=r"$\hat\lambda(w^*)$")
    ax.set_title(f"{len(table)} DLNs" + (f", {missing} diverged (not shown)" if missing else ""))
    ax.legend(loc="upper left")
    plots.save(fig, path)


def rel_error_vs_params(table: pd.DataFrame, path) -> None:
    """Relative error (lambda - lambda_hat)/lambda against parameter count; the paper's band."""
    fig, ax = plots.figure(width=5.5)
    for family, rows in table.groupby("family", sort=False):
        ax.scatter(rows["num_params"], rows["rel_error_true"], s=18, label=family)
    for edge in PAPER_BAND:
        ax.axhline(edge, color="grey", ls=":", lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="parameters", ylabel=r"$(\lambda - \hat\lambda)/\lambda$")
    ax.set_title("relative error (dotted: the paper's usual range)")
    ax.legend(title="family", fontsize=8)
    plots.save(fig, path)


def sgd_vs_true(table: pd.DataFrame, path) -> None:
    """lambda_hat at the SGD endpoint against lambda_hat at the true parameter."""
    fig, ax = plots.figure(width=5.5)
    _params_colour(ax, fig, table, table["lambda_hat_true"], table["lambda_hat_sgd"])
    _diagonal(ax, table["lambda_hat_true"])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\hat\lambda$ at the true parameter",
        ylabel=r"$\hat\lambda$ at the SGD endpoint",
    )
    ax.legend(loc="upper left")
    plots.save(fig, path)


def speed(table: pd.DataFrame, path) -> None:
    """Seconds per 1000 SGLD steps (all chains at once) against parameter count."""
    fig, ax = plots.figure(width=5.5)
    ax.scatter(table["num_params"], table["seconds_per_1k_steps_true"], s=18, label="at w*")
    ax.scatter(table["num_params"], table["seconds_per_1k_steps_sgd"], s=18, label="at SGD end")
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="seconds per 1k SGLD steps")
    ax.set_title("estimator cost (shared CPU: timings noisy)")
    ax.legend()
    plots.save(fig, path)


def traces(table: pd.DataFrame, arch_traces: list[dict], where: str, path) -> None:
    """Every architecture's chains for the estimates ``where`` (a key of :data:`WHERE`),
    one panel per architecture, against the true lambda."""
    panels = []
    for (_, row), arch in zip(table.iterrows(), arch_traces, strict=True):
        keys = ("rhat", "ess_bulk", "healthy", "health_reasons")
        summary = {k: row[f"{k}_{where}"] for k in keys}
        summary["llc_mean"] = row[f"lambda_hat_{where}"]
        title = f"#{row['index']} {row.widths} {WHERE[where]}"
        panels.append(
            plots.trace_panel(
                title, arch[where], summary, reference=row["lambda"], reference_label="λ"
            )
        )
    plots.llc_traces(panels, path, cols=6)


def draw_all(table: pd.DataFrame, arch_traces: list[dict], outdir) -> None:
    """Every figure of :data:`FIGURES` from the collected table (one row per architecture,
    by index) and each architecture's traces (in the same order) into ``outdir``."""
    lambda_hat_vs_lambda(table, outdir / "lambda_hat_vs_lambda.png")
    rel_error_vs_params(table, outdir / "rel_error_vs_params.png")
    sgd_vs_true(table, outdir / "sgd_vs_true.png")
    speed(table, outdir / "speed.png")
    for where in WHERE:
        traces(table, arch_traces, where, outdir / f"llc_traces_{where}.png")
