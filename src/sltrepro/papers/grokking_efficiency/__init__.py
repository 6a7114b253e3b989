"""Steps of the grokking_efficiency paper (Varma et al. 2023); see pipeline.py for the method.

Each step reads the files its rule names (``ctx.input``) and writes those it declares
(``ctx.output``); the paths live in workflows/grokking_efficiency.smk only. Training steps
keep their resume checkpoints in ``ctx.resume_dir``, emptied when their config changes.
"""

import numpy as np
import pandas as pd
import torch

from . import pipeline


def _load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def grok(ctx) -> None:
    """One model trained on a fraction of the table -> history, snapshots."""
    ckpt = ctx.resume_dir / "grok_checkpoint.pt"
    history, saved = pipeline.grok(ctx.config, ckpt, ctx.device)
    history.to_csv(ctx.output("history"), index=False)
    torch.save(saved, ctx.output("snapshots"))
    ctx.log.info(
        "grokking run: D=%d, final test acc %.3f",
        history.train_size.iloc[0],
        history.test_acc.iloc[-1],
    )


def llc(ctx) -> None:
    """LLC of every grokking snapshot -> llc, traces."""
    table, traces = pipeline.llc(ctx.config, _load(ctx.input("snapshots")), ctx.device, ctx.log)
    table.to_csv(ctx.output("llc"), index=False)
    np.save(ctx.output("traces"), traces)


def _save_sweep(ctx, history: pd.DataFrame, final: pd.DataFrame) -> None:
    history.to_csv(ctx.output("history"), index=False)
    final.to_csv(ctx.output("final"), index=False)


def memorise(ctx) -> None:
    """Memorisation-only nets over D -> history, final."""
    ckpt = ctx.resume_dir / "memorise_checkpoint.pt"
    _save_sweep(ctx, *pipeline.memorise(ctx.config, ckpt, ctx.device))


def generalise(ctx) -> None:
    """The pretrained nets continued over D -> history, final."""
    saved = _load(ctx.input("params"))
    ckpt = ctx.resume_dir / "generalise_checkpoint.pt"
    _save_sweep(ctx, *pipeline.generalise(ctx.config, saved, ckpt, ctx.device))


def pretrain(ctx) -> None:
    """The grokked models the ungrokking runs start from -> history, params."""
    ckpt = ctx.resume_dir / "pretrain_checkpoint.pt"
    history, saved = pipeline.pretrain(ctx.config, ckpt, ctx.device)
    history.to_csv(ctx.output("history"), index=False)
    torch.save(saved, ctx.output("params"))
    ctx.log.info(
        "pretrained test accuracy: %s", history.test_acc.iloc[-len(saved["seeds"]) :].tolist()
    )


def ungrok(ctx) -> None:
    """--opt wd=<weight decay>: the pretrained models on subsets of size D' -> history, final."""
    saved = _load(ctx.input("params"))
    ckpt = ctx.resume_dir / "ungrok_checkpoint.pt"
    _save_sweep(ctx, *pipeline.ungrok(ctx.config, ctx.opt("wd", float), saved, ckpt, ctx.device))


def semigrok(ctx) -> None:
    """Models trained at sizes near D_crit -> history."""
    ckpt = ctx.resume_dir / "semigrok_checkpoint.pt"
    pipeline.semigrok(ctx.config, ckpt, ctx.device).to_csv(ctx.output("history"), index=False)


def _tables(ctx) -> dict:
    """Every table analyze and figures read; efficiency in the order memorise, generalise,
    ungrok finals in the config's order of weight decays."""
    memorise, generalise = (pd.read_csv(p) for p in ctx.input_list("efficiency"))
    return {
        "history": pd.read_csv(ctx.input("grok_history")),
        "llcs": pd.read_csv(ctx.input("llc")),
        "memorise": memorise,
        "generalise": generalise,
        "ungrok_finals": pd.concat(pd.read_csv(p) for p in ctx.input_list("ungrok")),
        "semi": pd.read_csv(ctx.input("semigrok")),
    }


def analyze(ctx) -> dict:
    """Every step's tables -> the metrics the claims read."""
    pretrained = pd.read_csv(ctx.input("pretrain_history"))
    return pipeline.summarize(ctx.config, pretrained=pretrained, **_tables(ctx))


def draw(ctx) -> None:
    """Every figure of figures.FIGURES from the steps' tables."""
    # figures imports matplotlib and seaborn (~2.5 s of CPU): only the figure steps pay it
    from . import figures

    figures.draw_all(**_tables(ctx), llc_traces=np.load(ctx.input("llc_traces")), outdir=ctx.outdir)


STEPS = {
    "grok": grok,
    "llc": llc,
    "memorise": memorise,
    "generalise": generalise,
    "pretrain": pretrain,
    "ungrok": ungrok,
    "semigrok": semigrok,
    "analyze": analyze,
    "figures": draw,
}
