"""Steps of the saddle_to_saddle paper (Jacot et al. 2021); see pipeline.py for the method."""

import numpy as np
import pandas as pd

from . import figures, pipeline


def train(ctx) -> None:
    """--opt depth=L: the init-scale sweep of one depth -> history.npz."""
    pipeline.train_sweep(ctx.config, ctx.opt("depth", int), ctx.outdir, device=ctx.device)


def saxe(ctx) -> None:
    """Two-layer simulation vs Saxe's closed form -> saxe.csv."""
    pipeline.saxe_check(ctx.config, ctx.config["seed"]).to_csv(ctx.outdir / "saxe.csv", index=False)


def llc(ctx) -> None:
    """--opt arch=NAME: LLC at checkpoints of one trajectory -> llc.csv."""
    table = pipeline.llc_trajectory(ctx.config, ctx.opt("arch"), ctx.outdir)
    table.to_csv(ctx.outdir / "llc.csv", index=False)


def _load_histories(ctx) -> dict:
    histories = {}
    for spec in ctx.config["depths"]:
        L = spec["depth"]
        with np.load(ctx.results / "train" / f"L{L}" / "history.npz") as f:
            histories[L] = dict(f)
    return histories


def analyze(ctx) -> None:
    """Plateaus, rank jumps, escape fits, LLC summary -> tables and metrics.json."""
    cfg = ctx.config
    histories = _load_histories(ctx)
    plateaus = pd.concat(
        [pipeline.plateau_table(arr, cfg, L) for L, arr in histories.items()], ignore_index=True
    )
    counts = pd.concat(
        [pipeline.plateau_counts(arr, cfg, L) for L, arr in histories.items()], ignore_index=True
    )
    fits = pd.concat(
        [pipeline.escape_fits(arr, L, cfg["escape_fit_min_gamma"]) for L, arr in histories.items()],
        ignore_index=True,
    )
    saxe_table = pd.read_csv(ctx.results / "saxe" / "saxe.csv")
    llc_table = pd.concat(
        [
            pd.read_csv(ctx.results / "llc" / arch / "llc.csv")
            for arch in cfg["llc"]["architectures"]
        ],
        ignore_index=True,
    )
    plateaus.to_csv(ctx.outdir / "plateaus.csv", index=False)
    counts.to_csv(ctx.outdir / "plateau_counts.csv", index=False)
    fits.to_csv(ctx.outdir / "escape_fits.csv", index=False)
    metrics = pipeline.summarize(cfg, histories, plateaus, counts, fits, saxe_table, llc_table)
    pipeline.write_json(ctx.outdir / "metrics.json", metrics)
    ctx.log.info("metrics: %s", metrics)


def draw(ctx) -> None:
    """All figures from the saved results."""
    figures.draw_all(ctx.config, ctx.results, ctx.outdir)


STEPS = {"train": train, "saxe": saxe, "llc": llc, "analyze": analyze, "figures": draw}
