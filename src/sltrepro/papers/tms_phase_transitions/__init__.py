"""Steps of the tms_phase_transitions paper (Chen et al. 2023); see pipeline.py for the method.

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/tms_phase_transitions.smk only.
"""

import json

import numpy as np
import pandas as pd

from . import pipeline


def critical(ctx) -> None:
    """k-gon critical points: closed form, Monte Carlo, gradient -> critical."""
    pipeline.critical_table(ctx.config).to_csv(ctx.output("critical"), index=False)


def llc(ctx) -> None:
    """--opt point=NAME (e.g. 5-_c6): LLC at one critical point, per seed -> llc, and the
    first seed's chains -> trace."""
    table, trace = pipeline.llc_at_point(ctx.config, ctx.opt("point"))
    table.to_csv(ctx.output("llc"), index=False)
    np.save(ctx.output("trace"), trace)


def bayes(ctx) -> None:
    """--opt n=N: MALA on the posterior at sample size N -> draws, sampler."""
    draws, summary = pipeline.bayes_chains(ctx.config, ctx.opt("n", int))
    draws.to_csv(ctx.output("draws"), index=False)
    ctx.output("sampler").write_text(json.dumps(summary, indent=2))


def sgd(ctx) -> None:
    """The stack of SGD trajectories -> history."""
    np.savez_compressed(ctx.output("history"), **pipeline.train_sgd(ctx.config))


def _history(ctx) -> dict:
    with np.load(ctx.input("history")) as f:
        return dict(f)


def sgd_llc(ctx) -> None:
    """Plateaus of every trajectory and the LLC on those of the first llc_seeds -> csv."""
    arrays = _history(ctx)
    pipeline.plateau_table(ctx.config, arrays).to_csv(ctx.output("plateaus"), index=False)
    pipeline.sgd_llc(ctx.config, arrays).to_csv(ctx.output("llc"), index=False)


def _concat_csv(paths) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def analyze(ctx) -> dict:
    """Predicted vs measured transitions, plateau statistics -> occupancy, metrics."""
    cfg = ctx.config
    crit = pd.read_csv(ctx.input("critical"))
    llc_table = _concat_csv(ctx.input_list("llc"))
    draws = pd.concat([pd.read_csv(p) for p in ctx.input_list("draws")])
    summaries = [json.loads(p.read_text()) for p in ctx.input_list("sampler")]
    occ = pipeline.occupancy(draws)
    occ.to_csv(ctx.output("occupancy"), index=False)
    plateaus = pd.read_csv(ctx.input("plateaus"))
    sgd_llc_table = pd.read_csv(ctx.input("sgd_llc"))
    pipeline.sgd_phase_sequences(plateaus).to_csv(ctx.output("sgd_sequences"))
    metrics = pipeline.summarize(
        cfg, crit, llc_table, occ, summaries, plateaus, sgd_llc_table, _history(ctx)
    )
    ctx.log.info("metrics: %s", metrics)
    return metrics


def draw(ctx) -> None:
    """Every figure of figures.FIGURES from the saved results."""
    metrics = json.loads(ctx.input("metrics").read_text())
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    figures.draw_all(
        ctx.config,
        pd.read_csv(ctx.input("critical")),
        pd.read_csv(ctx.input("occupancy")),
        metrics.get("bayes_predicted_n"),
        _history(ctx),
        pd.read_csv(ctx.input("plateaus")),
        pd.read_csv(ctx.input("sgd_llc")),
        [pd.read_csv(path) for path in ctx.input_list("llc")],
        [np.load(path) for path in ctx.input_list("traces")],
        ctx.outdir,
    )


STEPS = {
    "critical": critical,
    "llc": llc,
    "bayes": bayes,
    "sgd": sgd,
    "sgd_llc": sgd_llc,
    "analyze": analyze,
    "figures": draw,
}
