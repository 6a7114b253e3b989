"""Run one step of a paper's pipeline: the single door every Snakemake rule goes through.

A paper's package ``sltrepro.papers.<paper>`` exposes ``STEPS = {name: function}``; each
function takes a :class:`StepContext`, writes its outputs into ``ctx.outdir`` and returns
nothing. This module validates the config, sets device and threads, times the step and
writes ``provenance.json`` beside its outputs.

A rule passes ``--reads key,key.sub,...@digest`` (``reads(...)`` in common.smk): the step then
sees only those keys of its config block, so the rule's digest covers everything the step
reads and a config edit reruns exactly the rules it concerns.
"""

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import provenance
from .config import ConfigError, DeclaredConfig, load_profile, read_yaml
from .device import resolve_device, set_threads
from .paths import paper_dir, results_dir


@dataclass
class StepContext:
    """Everything a step needs; see docs/DEVELOPING.md."""

    paper: str
    step: str
    profile: str
    config: dict
    outdir: Path
    results: Path
    device: torch.device
    threads: int = 1
    opts: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sltrepro"))

    def opt(self, key: str, cast=str, default=None):
        """``--opt key=value`` cast to ``cast``; a missing key without a default is an error."""
        if key in self.opts:
            return cast(self.opts[key])
        if default is not None:
            return default
        raise KeyError(f"step {self.paper}/{self.step} needs --opt {key}=...")


def paper_steps(paper: str) -> dict:
    """``STEPS`` of the paper's module: ``sltrepro.papers.<paper>`` unless paper.yaml names one."""
    meta = read_yaml(paper_dir(paper) / "paper.yaml")
    return importlib.import_module(meta.get("module", f"sltrepro.papers.{paper}")).STEPS


def parse_opts(pairs: list[str]) -> dict:
    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--opt expects key=value, got {pair!r}")
        opts[key] = value
    return opts


def run_step(
    paper: str,
    step: str,
    *,
    profile: str,
    outdir: str | Path,
    threads: int = 1,
    opts: dict | None = None,
    inputs: list | None = None,
    results_root: str | Path = "results",
    reads: str | None = None,
) -> StepContext:
    """Validate, run ``STEPS[step]`` of ``paper`` and write provenance.json into ``outdir``.

    ``reads`` (a rule's ``--reads`` spec) restricts the config the step sees to the keys its
    rule declares; without it (a step run by hand) the step sees the whole block.
    """
    steps = paper_steps(paper)
    if step not in steps:
        raise ConfigError(f"paper {paper!r} has no step {step!r}; steps: {', '.join(steps)}")
    config = load_profile(paper, profile)
    if reads is not None:
        where = f"papers/{paper}/config.yaml (profile {profile!r})"
        config = DeclaredConfig.select(config, reads, where=where)
    set_threads(threads)
    device = resolve_device(config.get("device", "auto"))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = StepContext(
        paper=paper,
        step=step,
        profile=profile,
        config=config,
        outdir=outdir,
        results=results_dir(profile, paper, results_root),
        device=device,
        threads=threads,
        opts=dict(opts or {}),
        inputs=[Path(p) for p in inputs or []],
        log=logging.getLogger(f"sltrepro.{paper}.{step}"),
    )
    ctx.log.info("%s/%s profile=%s device=%s opts=%s", paper, step, profile, device, ctx.opts)
    start = time.perf_counter()
    steps[step](ctx)
    wall = time.perf_counter() - start
    ctx.log.info("%s/%s finished in %.1f s", paper, step, wall)
    provenance.write(
        outdir / "provenance.json",
        paper=paper,
        step=step,
        profile=profile,
        config=config,
        opts=ctx.opts,
        inputs=[str(p) for p in ctx.inputs],
        seeds=provenance.find_seeds(config, ctx.opts),
        device=device,
        wall_time_s=round(wall, 3),
    )
    return ctx
