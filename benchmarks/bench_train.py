"""Stacked training against one model at a time, side by side in one process.

Every DAG that trains the same model for many seeds or settings trains them as one stack
(every tensor has a leading model axis). This benchmark times, for each such training loop,
one stacked call on S models against S calls on one model each, with the same inputs, and
prints the time per model-step of each, their ratio, and the largest difference between
the two runs' final parameters (0 when the stack is bit-identical to the single runs).

Cases, at the cpu profile's shapes (fewer steps; the cost of a step does not depend on
the step count):

- ``tms``: tms_phase_transitions SGD trajectories (``train.tms.train_stack``), 2 x 6
  autoencoders on their own 1,000-sample training sets, batch 20;
- ``saddle``: saddle_to_saddle gradient descent (``train.dln.train_dln``), depth-3
  width-100 deep linear networks, 3 seeds x 5 initialisation scales;
- ``grokking``: grokking_efficiency full-batch AdamW (``train.modular.train``), the
  1-layer modular-addition transformer (p = 53), efficiency-sweep nets on 800 examples.

- ``icl``: what stacking *would* give icl_landscape's regression seeds, which the DAG
  still trains one job per seed: the one-at-a-time side is the DAG's own trainer
  (``train.icl.train``, Adam, the cpu profile's batch 128 and one-cycle schedule); the
  stacked side is a prototype in this file (the same model through ``functional_call``
  under ``vmap``, Adam on the stacked tensors, each model's batches from its own seed's
  generator). It rounds differently, so max |diff| is not 0;
- ``lm``: the same for icl_landscape's attention-only LM seeds (the DAG's ``train.lm.train_lm``,
  AdamW, the cpu profile's 16 windows of 128 tokens with repeated spans, on a random token
  stream: a step's cost does not depend on the text) against the same kind of prototype.

llc_at_scale's SGD endpoints are not stacked: each job trains one randomly drawn
architecture, and different widths cannot share a tensor.

    nice -n 10 .venv/bin/python benchmarks/bench_train.py                # ~2-4 min, 2 cores
    nice -n 10 .venv/bin/python benchmarks/bench_train.py --steps 50 --repeats 1
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sltrepro.config import load_profile
from sltrepro.models.icl_transformer import ICLTransformer, encode
from sltrepro.models.modular_transformer import init_params
from sltrepro.papers.grokking_efficiency.pipeline import model_shape, optimizer, table
from sltrepro.papers.icl_landscape.lm_pipeline import build_model as build_lm
from sltrepro.papers.icl_landscape.pipeline import train_spec
from sltrepro.papers.saddle_to_saddle.pipeline import target_matrix
from sltrepro.papers.tms_phase_transitions.pipeline import sgd_data, sgd_init
from sltrepro.tasks.corpus import RepeatSpans, random_windows
from sltrepro.tasks.modular import make_batch, split_indices
from sltrepro.tasks.regression import sample_batch, task_pool
from sltrepro.train.dln import init_weights, train_dln
from sltrepro.train.icl import mse_by_position, triangle_lr
from sltrepro.train.icl import train as train_icl
from sltrepro.train.lm import LMTrainConfig, next_token_loss, train_lm
from sltrepro.train.modular import train as train_modular
from sltrepro.train.tms import train_stack


def tms_case(steps: int):
    """(S, train(models) -> the final parameters of ``models``, one flattened row each)."""
    config = load_profile("tms_phase_transitions", "cpu")
    seeds = list(range(12))
    weight, bias = sgd_init(config, seeds)
    data = sgd_data(config, seeds)
    sgd = config["sgd"]

    def train(models):
        hist = train_stack(
            weight[models],
            bias[models],
            data[models],
            [seeds[m] for m in models],
            lr=sgd["lr"],
            batch_size=sgd["batch_size"],
            num_steps=steps,
            log_steps=[0, steps],
            verbose=False,
        )
        final = [hist.weight[:, -1], hist.bias[:, -1]]
        return torch.as_tensor(np.concatenate([a.reshape(len(models), -1) for a in final], 1))

    return len(seeds), train


def saddle_case(steps: int):
    config = load_profile("saddle_to_saddle", "cpu")
    spec = next(s for s in config["depths"] if s["depth"] == 3)
    dim = len(config["target_diag"])
    widths = [dim, spec["width"], spec["width"], dim]
    scales = [spec["width"] ** (-g / 2) for g in spec["gammas"]]
    weights = init_weights(widths, scales, seeds=[0, 1, 2])
    target = target_matrix(config["target_diag"])

    def train(models):
        stack = [w[models].clone() for w in weights]
        train_dln(
            stack, target, lr=spec["lr"], num_steps=steps, log_steps=[0, steps], verbose=False
        )
        return torch.cat([w.reshape(len(models), -1) for w in stack], 1)

    return weights[0].shape[0], train


def grokking_case(steps: int):
    config = load_profile("grokking_efficiency", "cpu")
    tokens, labels = table(config)
    models = 6
    train_idx = [split_indices(len(tokens), 800, seed=s)[0] for s in range(models)]
    params = init_params(model_shape(config), models, seeds=0)

    def train(chosen):
        out, _, _ = train_modular(
            {k: v[chosen] for k, v in params.items()},
            make_batch(tokens, [labels] * len(chosen), [train_idx[m] for m in chosen]),
            steps=steps,
            weight_decay=1.0,
            settings=optimizer(config),
            log_steps=[0, steps],
            desc="bench",
        )
        return torch.cat([v.detach().reshape(len(chosen), -1) for v in out.values()], 1)

    return models, train


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def stacked_prototype(models, loss_one, make_optimizer, next_batches, steps, lr_at=None):
    """What a stacked trainer would do: every parameter stacked over the models, one vmapped
    loss, one optimizer over the stacks; ``next_batches()`` gives the stacked inputs of a
    step, each model's from its own generator. Returns the final parameters, a row each."""
    params = {
        k: torch.stack([dict(m.named_parameters())[k].detach() for m in models])
        for k, _ in models[0].named_parameters()
    }
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    opt = make_optimizer(params.values())
    losses = torch.func.vmap(lambda p, *batch: loss_one(models[0], p, *batch))
    for step in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        losses(params, *next_batches()).sum().backward()
        opt.step()
    return torch.cat([v.detach().reshape(len(models), -1) for v in params.values()], 1)


def icl_case(steps: int):
    config = load_profile("icl_landscape", "cpu")
    spec = train_spec(config["regression"])
    spec = type(spec)(**{**spec.__dict__, "steps": steps, "save_every": steps + 1})
    seeds = [0, 1, 2, 3]

    def init(seed):
        torch.manual_seed(seed)
        return ICLTransformer()

    def train(chosen):
        if len(chosen) == 1:
            model = init(seeds[chosen[0]])
            with tempfile.TemporaryDirectory() as folder:
                train_icl(model, spec, Path(folder), seed=seeds[chosen[0]])
            return flat_params(model)[None]
        gens = [torch.Generator().manual_seed(seeds[m]) for m in chosen]
        pools = [
            task_pool(spec.num_tasks, spec.dim, generator=g) if spec.num_tasks else None
            for g in gens
        ]

        def next_batches():
            batches = [
                sample_batch(spec.batch_size, dim=spec.dim, num_examples=spec.num_examples,
                             noise_var=spec.noise_var, generator=g, pool=pool)
                for g, pool in zip(gens, pools, strict=True)
            ]  # fmt: skip
            tokens = torch.stack([encode(xs, ys) for xs, ys, _ in batches])
            return tokens, torch.stack([ys for _, ys, _ in batches])

        def loss_one(model, p, tokens, ys):
            return mse_by_position(torch.func.functional_call(model, p, (tokens,)), ys).mean()

        return stacked_prototype(
            [init(seeds[m]) for m in chosen],
            loss_one,
            lambda params: torch.optim.Adam(params, lr=0.0, betas=spec.betas),
            next_batches,
            spec.steps,
            lambda step: triangle_lr(step, spec.steps, spec.peak_lr, spec.peak_fraction),
        )

    return len(seeds), train


def lm_case(steps: int):
    config = load_profile("icl_landscape", "cpu")["language"]
    seeds = config["seeds"]
    vocab = config["vocab_size"]
    stream = torch.randint(vocab, (200_000,), generator=torch.Generator().manual_seed(0))
    spans = RepeatSpans.from_config(config["repeat_spans"])

    def init(seed):
        torch.manual_seed(seed)
        return build_lm(config, vocab)

    def train(chosen):
        if len(chosen) == 1:
            model = init(seeds[chosen[0]])
            settings = LMTrainConfig(
                steps=steps, batch_size=config["batch_size"], context=config["context"],
                lr=config["lr"], weight_decay=config["weight_decay"], seed=seeds[chosen[0]],
                snapshot_steps=[], repeat_spans=spans, resume_every=steps + 1,
            )  # fmt: skip
            with tempfile.TemporaryDirectory() as folder:
                train_lm(model, stream, settings, Path(folder))
            return flat_params(model)[None]
        gens = [torch.Generator().manual_seed(seeds[m]) for m in chosen]

        def next_batches():
            windows = []
            for g in gens:
                batch = random_windows(stream, config["batch_size"], config["context"] + 1, g)
                windows.append(spans.apply(batch, g))
            return (torch.stack(windows),)

        def loss_one(model, p, batch):
            return next_token_loss(
                torch.func.functional_call(model, p, (batch[:, :-1],)), batch[:, 1:]
            )

        return stacked_prototype(
            [init(seeds[m]) for m in chosen],
            loss_one,
            lambda params: torch.optim.AdamW(
                params, lr=config["lr"], weight_decay=config["weight_decay"]
            ),
            next_batches,
            steps,
        )

    return len(seeds), train


CASES = {
    "tms": tms_case,
    "saddle": saddle_case,
    "grokking": grokking_case,
    "icl": icl_case,
    "lm": lm_case,
}


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def one_at_a_time(train, models):
    return torch.cat([train([m]) for m in models])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="side-by-side pairs per case")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    # One thread, as the DAG's training rules run: on a shared machine two OpenMP threads
    # wait on each other at every op and a step can take 40x longer.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps")
    print(
        f"{'case':9} {'models':>6} {'stacked us/model-step':>22} {'one at a time':>14} "
        f"{'ratio':>6} {'max |diff|':>10}"
    )
    for name in args.cases:
        num, train = CASES[name](args.steps)
        train([0])  # warm-up: first-call allocations and thread pools
        everyone = list(range(num))
        stacked, single = [], []
        for _ in range(args.repeats):
            t_stack, stack_out = timed(train, everyone)
            t_single, single_out = timed(one_at_a_time, train, everyone)
            stacked.append(t_stack)
            single.append(t_single)
        diff = float((stack_out - single_out).abs().max())
        per = 1e6 / (num * args.steps)
        t_stack, t_single = statistics.median(stacked), statistics.median(single)
        print(
            f"{name:9} {num:>6} {t_stack * per:>22.1f} {t_single * per:>14.1f} "
            f"{t_single / t_stack:>5.1f}x {diff:>10.2e}"
        )


if __name__ == "__main__":
    main()
