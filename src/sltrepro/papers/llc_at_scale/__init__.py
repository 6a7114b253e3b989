"""Steps of the llc_at_scale paper (Furman & Lau 2024); see pipeline.py for the method.

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/llc_at_scale.smk only.
"""

import json

import numpy as np
import pandas as pd

from . import pipeline, rescaling


def estimate(ctx) -> None:
    """--opt index=I: lambda, lambda_hat at w* and at the SGD endpoint -> result, traces."""
    record, traces = pipeline.estimate_architecture(
        ctx.config, ctx.opt("index", int), ctx.resume_dir / "sgd.pt", ctx.device, ctx.log
    )
    ctx.output("result").write_text(json.dumps(record, indent=1))
    np.savez_compressed(ctx.output("traces"), **traces)


def rescale(ctx) -> dict:
    """lambda_hat and tr(Hessian) of a ReLU teacher under layer rescaling -> metrics."""
    return rescaling.rescaling_experiment(ctx.config, ctx.device, ctx.log)


def collect(ctx) -> dict:
    """Every architecture's result and the rescaling metrics -> table and metrics."""
    table = pipeline.result_table(ctx.input_list("result"))
    table.to_csv(ctx.output("table"), index=False)
    metrics = pipeline.summary_metrics(table)
    metrics |= json.loads(ctx.input("rescaling").read_text())
    ctx.log.info("metrics: %s", metrics)
    return metrics


def draw(ctx) -> None:
    """Every figure of figures.FIGURES from the table."""
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    traces = [dict(np.load(path)) for path in ctx.input_list("traces")]
    figures.draw_all(pd.read_csv(ctx.input("table")), traces, ctx.outdir)


STEPS = {"estimate": estimate, "rescaling": rescale, "collect": collect, "figures": draw}
