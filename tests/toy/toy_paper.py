"""A toy paper used by the harness tests: seeded draws, their mean, one figure."""

import json
import time

import torch

from sltrepro import plots


def sample(ctx):
    gen = torch.Generator().manual_seed(ctx.config["seed"])
    draws = torch.randn(ctx.config["draws"], generator=gen).tolist()
    with open(ctx.output("draws"), "w") as out:
        # a step that writes its output over time, so a kill can leave it half written
        out.write("[")
        out.flush()
        time.sleep(ctx.config["delay_s"])
        out.write(", ".join(map(repr, draws)) + "]")


def analyze(ctx):
    draws = json.loads(ctx.input("draws").read_text())
    fig, ax = plots.figure()
    ax.hist(draws, bins=ctx.config["bins"])
    plots.save(fig, ctx.output("figure"))
    return {"mean": sum(draws) / len(draws), "draws_ok": len(draws) == ctx.config["draws"]}


STEPS = {"sample": sample, "analyze": analyze}
