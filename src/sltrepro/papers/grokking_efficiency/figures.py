"""Figures in the style of Varma et al. 2023, drawn from the saved step outputs."""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator, ScalarFormatter

from sltrepro import plots

from .pipeline import critical_size, median_line, norm_crossover


def size_axis(ax, sizes) -> None:
    """A log x axis with one plainly written tick per training set size."""
    ax.set_xticks(sorted(set(sizes)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=45)


def training_curves(history: pd.DataFrame, llcs: pd.DataFrame, path) -> None:
    """Grokking run: accuracy, loss, parameter norm, and the LLC with the test loss on one
    time axis (log x). LLC estimates that fail the health gate are drawn hollow."""
    fig, axes = plots.figure(1, 4, width=3.6, height=3.0)
    h = history[history.step > 0]
    for split, color in (("train", "C0"), ("test", "C3")):
        axes[0].plot(h.step, h[f"{split}_acc"], color=color, label=split)
        axes[1].plot(h.step, h[f"{split}_loss"], color=color, label=split)
    axes[0].set(ylabel="accuracy", title="accuracy")
    axes[1].set(ylabel="cross-entropy", yscale="log", title="loss")
    axes[2].plot(h.step, h.param_norm, color="k")
    axes[2].set(ylabel="parameter norm", title="parameter norm")
    llc_with_test_loss(axes[3], h, llcs[llcs.step > 0])
    for ax in axes:
        ax.set(xscale="log", xlabel="step")
    axes[0].legend()
    plots.save(fig, path)


def llc_with_test_loss(ax, history: pd.DataFrame, llcs: pd.DataFrame) -> None:
    """LLC (filled: healthy, hollow: failed the gate) and, on a twin axis, the test loss."""
    ax.errorbar(llcs.step, llcs.llc_mean, yerr=llcs.llc_std, color="C2", ls="-", marker="")
    for healthy, face in ((True, "C2"), (False, "white")):
        pick = llcs[llcs.healthy == healthy]
        label = "LLC" if healthy else "LLC, unhealthy (unreliable)"
        ax.scatter(
            pick.step, pick.llc_mean, s=18, color=face, edgecolor="C2", zorder=3, label=label
        )
    ax.set(ylabel=r"$\hat\lambda$", title="LLC and test loss")
    twin = ax.twinx()
    twin.plot(history.step, history.test_loss, color="C3", lw=1, label="test loss")
    twin.set(ylabel="test cross-entropy", yscale="log")
    ax.legend(fontsize=7, loc="upper left")


def efficiency_vs_size(mem: pd.DataFrame, gen: pd.DataFrame, path) -> None:
    """Parameter norm at the end of training vs D (seeds as points, per-D median as line),
    memorising and generalising nets, with their log-log fits and where they cross."""
    fig, ax = plots.figure()
    for frame, label, color in (
        (mem, "memorisation (random labels)", "C1"),
        (gen, "generalisation (grokked nets continued)", "C0"),
    ):
        ax.scatter(frame["size"], frame.param_norm, color=color, alpha=0.4, s=12)
        medians = frame.groupby("size").param_norm.median()
        ax.plot(medians.index, medians.values, color=color, marker="o", ls="", label=label)
        slope, icpt = median_line(frame)
        grid = np.geomspace(mem["size"].min(), gen["size"].max(), 50)
        ax.plot(grid, np.exp(icpt) * grid**slope, color=color, lw=1, ls="--")
    crossing = norm_crossover(mem, gen)
    if crossing is not None:
        ax.axvline(crossing, color="0.4", lw=1, ls=":", label=f"crossover D = {crossing:.0f}")
    ax.set(xscale="log", xlabel="training set size D", ylabel="parameter norm")
    size_axis(ax, pd.concat([mem["size"], gen["size"]]))
    ax.legend(fontsize=8)
    plots.save(fig, path)


def ungrokking(finals: pd.DataFrame, path) -> None:
    """Final test accuracy vs D' per weight decay (seeds as points, mean as line), D_crit."""
    fig, ax = plots.figure(width=5.0)
    for i, (wd, group) in enumerate(finals.groupby("weight_decay")):
        color = f"C{i}"
        ax.scatter(group["size"], group.test_acc, color=color, alpha=0.35, s=12)
        mean = group.groupby("size").test_acc.mean()
        ax.plot(mean.index, mean.values, color=color, marker="o", label=f"wd = {wd:g}")
        crit = critical_size(mean.index.values, mean.values)
        if crit is not None:
            ax.axvline(crit, color=color, ls="--", lw=1)
    ax.set(
        xscale="log",
        xlabel="reduced training set size D'",
        ylabel="final test accuracy",
        ylim=(-0.02, 1.02),
        title="ungrokking (dashed: D_crit)",
    )
    size_axis(ax, finals["size"])
    ax.legend()
    plots.save(fig, path)


def semigrokking(semi: pd.DataFrame, path) -> None:
    """Test accuracy over training for runs at sizes near D_crit."""
    fig, ax = plots.figure(width=5.0)
    sizes = sorted(semi["size"].unique())
    colors = dict(zip(sizes, [f"C{i}" for i in range(len(sizes))], strict=True))
    for (size, _seed), run in semi[semi.step > 0].groupby(["size", "seed"]):
        ax.plot(run.step, run.test_acc, color=colors[size], alpha=0.8)
    for size in sizes:
        ax.plot([], [], color=colors[size], label=f"D = {size}")
    ax.axhspan(0.2, 0.9, color="0.9", zorder=0)
    ax.set(
        xscale="log",
        xlabel="step",
        ylabel="test accuracy",
        ylim=(-0.02, 1.02),
        title="semi-grokking search (grey: middling band)",
    )
    ax.legend(fontsize=8)
    plots.save(fig, path)


# The figures draw_all writes (as <name>.png); the workflow declares them from this list.
FIGURES = ("grokking", "llc_traces", "efficiency", "ungrokking", "semigrokking")


def draw_all(
    history: pd.DataFrame,
    llcs: pd.DataFrame,
    memorise: pd.DataFrame,
    generalise: pd.DataFrame,
    ungrok_finals: pd.DataFrame,
    semi: pd.DataFrame,
    llc_traces: np.ndarray,
    outdir: Path,
) -> None:
    """Every figure of :data:`FIGURES` into ``outdir``, from the steps' tables and the
    (K, C, D) traces of the K rows of ``llcs``."""
    training_curves(history, llcs, outdir / "grokking.png")
    plots.llc_traces(
        [
            plots.trace_panel(f"step {row.step}", trace, row)
            for (_, row), trace in zip(llcs.iterrows(), llc_traces, strict=True)
        ],
        outdir / "llc_traces.png",
        cols=4,
    )
    efficiency_vs_size(memorise, generalise, outdir / "efficiency.png")
    ungrokking(ungrok_finals, outdir / "ungrokking.png")
    semigrokking(semi, outdir / "semigrokking.png")
    assert np.isfinite(history.train_loss).all(), "non-finite training loss in the grokking run"
