"""Steps of the saddle_to_saddle paper (Jacot et al. 2021); see pipeline.py for the method.

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/saddle_to_saddle.smk only.
"""

import numpy as np
import pandas as pd

from . import pipeline


def train(ctx) -> None:
    """--opt depth=L: the init-scale sweep of one depth -> history."""
    arrays = pipeline.train_sweep(
        ctx.config, ctx.opt("depth", int), ctx.resume_dir / "checkpoint.pt", device=ctx.device
    )
    np.savez_compressed(ctx.output("history"), **arrays)


def saxe(ctx) -> None:
    """Two-layer simulation vs Saxe's closed form -> saxe."""
    pipeline.saxe_check(ctx.config, ctx.config["seed"]).to_csv(ctx.output("saxe"), index=False)


def llc(ctx) -> None:
    """--opt arch=NAME: LLC at checkpoints of one trajectory -> llc, history, traces."""
    table, arrays, traces = pipeline.llc_trajectory(
        ctx.config, ctx.opt("arch"), ctx.resume_dir / "checkpoint.pt"
    )
    table.to_csv(ctx.output("llc"), index=False)
    np.savez_compressed(ctx.output("history"), **arrays)
    np.save(ctx.output("traces"), traces)


def structure(ctx) -> None:
    """Small vs large init: every layer on the first saddle and at convergence -> structure."""
    pipeline.structure_runs(ctx.config).to_csv(ctx.output("structure"), index=False)


def width_sweep(ctx) -> None:
    """gamma < 1 and gamma > 1 at growing width -> width_sweep."""
    pipeline.width_sweep(ctx.config).to_csv(ctx.output("width_sweep"), index=False)


def _load_npz(paths) -> list[dict]:
    arrays = []
    for path in paths:
        with np.load(path) as f:
            arrays.append(dict(f))
    return arrays


def _histories(ctx) -> dict:
    """depth -> training arrays; the rule lists the histories in the config's depth order."""
    depths = [spec["depth"] for spec in ctx.config["depths"]]
    return dict(zip(depths, _load_npz(ctx.input_list("history")), strict=True))


def _llc_table(ctx) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in ctx.input_list("llc")], ignore_index=True)


def analyze(ctx) -> dict:
    """Plateaus, rank jumps, escape fits, LLC summary -> tables and metrics."""
    cfg = ctx.config
    histories = _histories(ctx)
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
    saxe_table = pd.read_csv(ctx.input("saxe"))
    plateaus.to_csv(ctx.output("plateaus"), index=False)
    counts.to_csv(ctx.output("plateau_counts"), index=False)
    fits.to_csv(ctx.output("escape_fits"), index=False)
    metrics = pipeline.summarize(
        cfg,
        histories,
        plateaus,
        counts,
        fits,
        saxe_table,
        _llc_table(ctx),
        pd.read_csv(ctx.input("structure")),
        pd.read_csv(ctx.input("width_sweep")),
    )
    ctx.log.info("metrics: %s", metrics)
    return metrics


def draw(ctx) -> None:
    """Every figure of figures.FIGURES from the saved results."""
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    archs = list(ctx.config["llc"]["architectures"])
    llc_histories = dict(zip(archs, _load_npz(ctx.input_list("llc_history")), strict=True))
    llc_traces = {
        arch: np.load(path) for arch, path in zip(archs, ctx.input_list("llc_traces"), strict=True)
    }
    figures.draw_all(
        ctx.config,
        _histories(ctx),
        pd.read_csv(ctx.input("saxe")),
        _llc_table(ctx),
        llc_histories,
        llc_traces,
        pd.read_csv(ctx.input("structure")),
        pd.read_csv(ctx.input("width_sweep")),
        ctx.outdir,
    )


STEPS = {
    "train": train,
    "saxe": saxe,
    "llc": llc,
    "structure": structure,
    "width_sweep": width_sweep,
    "analyze": analyze,
    "figures": draw,
}
