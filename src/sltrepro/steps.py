"""Run one step of a paper's pipeline: the single door every Snakemake rule goes through.

A paper's package ``sltrepro.papers.<paper>`` exposes ``STEPS = {name: function}``; each
function takes a :class:`StepContext`, reads the files its rule names (``ctx.input(name)``),
writes the ones its rule declares (``ctx.output(name)``, or others into ``ctx.outdir``) and
returns nothing, or a flat dict of metrics, which is written to ``ctx.output("metrics")`` by
:func:`sltrepro.metrics.write`. This module validates the config, sets device and threads,
times the step and writes ``provenance.json`` beside its outputs.

A rule passes ``--reads key,key.sub,...@digest`` (``reads(...)`` in common.smk): the step then
sees only those keys of its config block, so the rule's digest covers everything the step
reads and a config edit reruns exactly the rules it concerns.
"""

import hashlib
import importlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from . import metrics as metrics_json
from . import provenance
from .config import ConfigError, DeclaredConfig, load_profile, read_yaml
from .device import resolve_device, set_threads
from .paths import paper_dir

RESUME_DIR = "resume"


@dataclass
class StepContext:
    """Everything a step needs; see docs/DEVELOPING.md."""

    paper: str
    step: str
    profile: str
    config: dict
    outdir: Path
    device: torch.device
    threads: int = 1
    opts: dict = field(default_factory=dict)
    named_inputs: dict = field(default_factory=dict)
    named_outputs: dict = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sltrepro"))

    def input(self, name: str) -> Path:
        """The one file the rule passes as ``--input name=PATH``."""
        return _one(self.input_list(name), f"--input {name}=", self)

    def input_list(self, name: str) -> list[Path]:
        """The files the rule passes as ``--input name=PATH [PATH ...]``, in the rule's order."""
        return _named(self.named_inputs, name, "--input", self)

    def output(self, name: str) -> Path:
        """The one file the rule declares as ``--output name=PATH``."""
        return _one(self.output_list(name), f"--output {name}=", self)

    def output_list(self, name: str) -> list[Path]:
        """The files the rule declares as ``--output name=PATH [PATH ...]``, in its order."""
        return _named(self.named_outputs, name, "--output", self)

    @cached_property
    def resume_dir(self) -> Path:
        """The folder for the state an interrupted step resumes from (checkpoints). It
        belongs to one config and set of opts: when either changed since it was written, it
        is emptied on first use, so an edited step starts afresh rather than resuming
        another configuration's training."""
        return fresh_resume_dir(self.outdir / RESUME_DIR, self.config, self.opts, self.log)

    def opt(self, key: str, cast=str, default=None):
        """``--opt key=value`` cast to ``cast``; a missing key without a default is an error."""
        if key in self.opts:
            return cast(self.opts[key])
        if default is not None:
            return default
        raise KeyError(f"step {self.paper}/{self.step} needs --opt {key}=...")


def _named(files: dict, name: str, flag: str, ctx) -> list[Path]:
    if name not in files:
        given = ", ".join(files) or "none"
        raise ConfigError(
            f"step {ctx.paper}/{ctx.step} needs {flag} {name}=PATH from its rule (given: {given})"
        )
    return files[name]


def _one(paths: list[Path], flag: str, ctx) -> Path:
    if len(paths) != 1:
        raise ConfigError(f"step {ctx.paper}/{ctx.step} needs one {flag}PATH, got {len(paths)}")
    return paths[0]


def parse_files(groups: list[list[str]], flag: str) -> dict:
    """``--input name=PATH [PATH ...]`` groups -> ``{name: [Path, ...]}``.

    Every group is named. A name given twice extends its list (a rule may pass
    ``{input.history}`` of several wildcards).
    """
    named = {}
    for group in groups:
        name, sep, first = group[0].partition("=")
        if not sep or not name or not first:
            raise ConfigError(f"{flag} expects name=PATH [PATH ...], got {' '.join(group)!r}")
        named.setdefault(name, []).extend(Path(p) for p in [first, *group[1:]])
    return named


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
    outputs: list | None = None,
    reads: str | None = None,
) -> StepContext:
    """Validate, run ``STEPS[step]`` of ``paper`` and write provenance.json into ``outdir``.

    ``reads`` (a rule's ``--reads`` spec) restricts the config the step sees to the keys its
    rule declares; without it (a step run by hand) the step sees the whole block.
    ``inputs`` and ``outputs`` are the ``--input``/``--output`` groups (lists of words, see
    :func:`parse_files`).
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
    named_inputs = parse_files(_groups(inputs), "--input")
    named_outputs = parse_files(_groups(outputs), "--output")
    ctx = StepContext(
        paper=paper,
        step=step,
        profile=profile,
        config=config,
        outdir=outdir,
        device=device,
        threads=threads,
        opts=dict(opts or {}),
        named_inputs=named_inputs,
        named_outputs=named_outputs,
        log=logging.getLogger(f"sltrepro.{paper}.{step}"),
    )
    ctx.log.info("%s/%s profile=%s device=%s opts=%s", paper, step, profile, device, ctx.opts)
    start = time.perf_counter()
    returned = steps[step](ctx)
    if returned is not None:
        where = ctx.output("metrics") if "metrics" in named_outputs else outdir / "metrics.json"
        metrics_json.write(where, returned)
    wall = time.perf_counter() - start
    ctx.log.info("%s/%s finished in %.1f s", paper, step, wall)
    provenance.write(
        outdir / "provenance.json",
        paper=paper,
        step=step,
        profile=profile,
        config=config,
        opts=ctx.opts,
        inputs=[str(p) for paths in named_inputs.values() for p in paths],
        seeds=provenance.find_seeds(config, ctx.opts),
        device=device,
        wall_time_s=round(wall, 3),
    )
    return ctx


def fresh_resume_dir(folder: Path, config: dict, opts: dict, log) -> Path:
    """``folder``, emptied when it was written for another config or opts; it records the
    current ones as a digest in ``folder/key``."""
    state = json.dumps({"config": config, "opts": opts}, sort_keys=True, default=str)
    key = hashlib.sha1(state.encode()).hexdigest()
    marker = folder / "key"
    if folder.exists() and (not marker.exists() or marker.read_text() != key):
        log.warning("config or opts changed since %s was written: starting afresh", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(key)
    return folder


def _groups(files: list | None) -> list[list[str]]:
    """``--input``/``--output`` groups; a flat list of words (a call from Python) is one group."""
    files = list(files or [])
    if files and not isinstance(files[0], list | tuple):
        return [[str(p) for p in files]]
    return [[str(p) for p in group] for group in files]
