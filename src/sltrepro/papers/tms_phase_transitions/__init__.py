"""Steps of the tms_phase_transitions paper (Chen et al. 2023); see pipeline.py for the method."""

import json

import numpy as np
import pandas as pd

from . import figures, pipeline


def critical(ctx) -> None:
    """k-gon critical points: closed form, Monte Carlo, gradient -> critical.csv."""
    pipeline.critical_table(ctx.config).to_csv(ctx.outdir / "critical.csv", index=False)


def llc(ctx) -> None:
    """--opt point=NAME (e.g. 5-_c6): LLC at one critical point, per seed -> llc.csv."""
    table = pipeline.llc_at_point(ctx.config, ctx.opt("point"))
    table.to_csv(ctx.outdir / "llc.csv", index=False)


def bayes(ctx) -> None:
    """--opt n=N: MALA on the posterior at sample size N -> draws.csv, sampler.json."""
    draws, summary = pipeline.bayes_chains(ctx.config, ctx.opt("n", int))
    draws.to_csv(ctx.outdir / "draws.csv", index=False)
    (ctx.outdir / "sampler.json").write_text(json.dumps(summary, indent=2))


def sgd(ctx) -> None:
    """The stack of SGD trajectories -> history.npz."""
    pipeline.train_sgd(ctx.config, ctx.outdir)


def _history(ctx) -> dict:
    with np.load(ctx.results / "sgd" / "history.npz") as f:
        return dict(f)


def sgd_llc(ctx) -> None:
    """Plateaus of every trajectory and the LLC on those of the first llc_seeds -> csv."""
    arrays = _history(ctx)
    pipeline.plateau_table(ctx.config, arrays).to_csv(ctx.outdir / "plateaus.csv", index=False)
    pipeline.sgd_llc(ctx.config, arrays).to_csv(ctx.outdir / "llc.csv", index=False)


def analyze(ctx) -> None:
    """Predicted vs measured transitions, plateau statistics -> occupancy.csv, metrics.json."""
    cfg, res = ctx.config, ctx.results
    crit = pd.read_csv(res / "critical" / "critical.csv")
    llc_table = pd.concat(
        [pd.read_csv(res / "llc" / p / "llc.csv") for p in cfg["llc"]["points"]],
        ignore_index=True,
    )
    ns = cfg["bayes"]["sample_sizes"]
    draws = pd.concat([pd.read_csv(res / "bayes" / f"n{n}" / "draws.csv") for n in ns])
    summaries = [json.loads((res / "bayes" / f"n{n}" / "sampler.json").read_text()) for n in ns]
    occ = pipeline.occupancy(draws)
    occ.to_csv(ctx.outdir / "occupancy.csv", index=False)
    plateaus = pd.read_csv(res / "sgd_llc" / "plateaus.csv")
    sgd_llc_table = pd.read_csv(res / "sgd_llc" / "llc.csv")
    pipeline.sgd_phase_sequences(plateaus).to_csv(ctx.outdir / "sgd_sequences.csv")
    metrics = pipeline.summarize(
        cfg, crit, llc_table, occ, summaries, plateaus, sgd_llc_table, _history(ctx)
    )
    pipeline.write_json(ctx.outdir / "metrics.json", metrics)
    ctx.log.info("metrics: %s", metrics)


def draw(ctx) -> None:
    """All figures from the saved results."""
    figures.draw_all(ctx.config, ctx.results, ctx.outdir)


STEPS = {
    "critical": critical,
    "llc": llc,
    "bayes": bayes,
    "sgd": sgd,
    "sgd_llc": sgd_llc,
    "analyze": analyze,
    "figures": draw,
}
