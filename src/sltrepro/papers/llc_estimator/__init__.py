"""Steps of the llc_estimator paper (Lau et al. 2023, arXiv 2308.12108); see pipeline.py.

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/llc_estimator.smk only.
"""

import json

import pandas as pd

from . import pipeline


def _write_json(path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=1))


def _read_json(paths) -> list[dict]:
    return [json.loads(p.read_text()) for p in paths]


def normal_crossing(ctx) -> None:
    """--opt model=NAME: one Table 1 model, every seed -> estimates."""
    out = pipeline.normal_crossing(ctx.config, ctx.opt("model"), ctx.device, ctx.log)
    _write_json(ctx.output("estimates"), out)


def dln(ctx) -> None:
    """--opt case=NAME: one DLN case, every seed -> estimates."""
    _write_json(
        ctx.output("estimates"), pipeline.dln(ctx.config, ctx.opt("case"), ctx.device, ctx.log)
    )


def mala_reference(ctx) -> None:
    """--opt case=NAME: the case's finite-nbeta expectation by full-batch MALA -> reference."""
    out = pipeline.mala_reference(ctx.config, ctx.opt("case"))
    ctx.log.info("MALA reference %s: %s", out["case"], out)
    _write_json(ctx.output("reference"), out)


def calibrate(ctx) -> None:
    """Step size x nbeta sweep -> table, summary."""
    table, summary = pipeline.calibrate(ctx.config, ctx.device)
    table.to_csv(ctx.output("table"), index=False)
    _write_json(ctx.output("summary"), summary)
    ctx.log.info("calibration:\n%s", table.to_string())


def collect(ctx) -> dict:
    """Every estimate, calibration summary and MALA reference -> table, diagnostics, metrics."""
    table, diagnostics, metrics = pipeline.collect(
        _read_json(ctx.input_list("estimates")),
        _read_json(ctx.input_list("calibration")),
        _read_json(ctx.input_list("mala")),
    )
    table.to_csv(ctx.output("table"), index=False)
    diagnostics.to_csv(ctx.output("diagnostics"), index=False)
    ctx.log.info("table:\n%s", table.to_string())
    return metrics


def draw(ctx) -> None:
    """Every figure of figures.FIGURES."""
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    figures.draw_all(
        pd.read_csv(ctx.input("table")),
        _read_json(ctx.input_list("estimates")),
        pd.read_csv(ctx.input("calibration_table")),
        json.loads(ctx.input("calibration").read_text()),
        ctx.outdir,
    )


STEPS = {
    "normal_crossing": normal_crossing,
    "dln": dln,
    "mala_reference": mala_reference,
    "calibrate": calibrate,
    "collect": collect,
    "figures": draw,
}
