"""Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning".

The regression half lives in ``pipeline.py`` / ``figures.py``; the language-model half adds
its own modules (``lm_*.py``) and registers their steps in ``STEPS`` below.
"""

from . import figures, lm_pipeline, pipeline


def regression_figures(ctx) -> None:
    """Figures of the first seed of the regression half."""
    seed = ctx.config["regression"]["seeds"][0]
    figures.draw_all(ctx.results / "regression", seed, ctx.outdir)


STEPS = {
    "train": pipeline.step_train,
    "llc": pipeline.step_llc,
    "probe": pipeline.step_probe,
    "analyze": pipeline.step_analyze,
    "figures": regression_figures,
    "metrics": pipeline.step_metrics,
    # the language-model half (lm_pipeline.py, lm_figures.py)
    "lm_train": lm_pipeline.lm_train,
    "lm_evaluate": lm_pipeline.lm_evaluate,
    "lm_analyze": lm_pipeline.lm_analyze,
    "lm_figures": lm_pipeline.lm_figures,
}
