"""A toy paper used by the harness tests: seeded draws, their mean, one figure."""

import json

import torch

from sltrepro import plots


def sample(ctx):
    gen = torch.Generator().manual_seed(ctx.config["seed"])
    draws = torch.randn(ctx.config["draws"], generator=gen).tolist()
    (ctx.outdir / "draws.json").write_text(json.dumps(draws))


def analyze(ctx):
    draws = json.loads(ctx.inputs[0].read_text())
    metrics = {"mean": sum(draws) / len(draws), "draws_ok": len(draws) == ctx.config["draws"]}
    (ctx.outdir / "metrics.json").write_text(json.dumps(metrics))
    fig, ax = plots.figure()
    ax.hist(draws)
    plots.save(fig, ctx.outdir / "figures" / "draws.png")


STEPS = {"sample": sample, "analyze": analyze}
