"""LLC over K checkpoints: one estimate_llc_trajectory call against K estimate_llc calls.

Side by side in one process, on the same checkpoints, data, settings and seeds:

- ``trajectory``: :func:`sltrepro.llc.estimate_llc_trajectory`, the K * C chains in one
  stacked tensor;
- ``grouped``: the same call with ``max_stacked_checkpoints=--group``, groups of G
  checkpoints stacked one after another (fewer chains in the cache at a time);
- ``separate``: K calls of :func:`sltrepro.llc.estimate_llc`, one per checkpoint (each
  batching its own C chains), which is what the papers did before.

Cases: the icl_landscape in-context regression transformer (51,717 parameters; the
cpu-profile LLC settings of papers/icl_landscape/config.yaml: batch 64, nbeta 66.7,
localization 6.67, step 3e-4, 4096 samples, vector per-token loss), a small deep linear
network, and the icl_landscape attention-only LM at its cpu shape (106,880 parameters,
batch 8 windows of 128 tokens, the cpu LLC settings), where a chain's activations alone
(8 x 128 x 512 logits) fill the cache, so stacking checkpoints may not pay. The
checkpoints are K independent initialisations (the cost of a step does not depend on
where the parameters are). Prints the wall time of each (median over ``--repeats``
side-by-side runs), the speed ratios separate / trajectory and separate / grouped, and the
largest difference between the runs' per-chain estimates (0 when bit-identical).

A second table says where the limit of stacking lies, from two readings per case:

- the rate the separate calls reach: their FLOPs (counted by torch's ``FlopCounterMode`` on
  one untimed ``estimate_llc`` call, times K; the stacked runs do the same arithmetic) over
  their wall time, as GFLOP/s and as a share of a 2048^2 matmul timed after each
  side-by-side repeat at the same threads. ``matmul ceiling`` is matmul rate / separate
  rate: the most stacking could gain if the stacked run went at the matmul rate;
- the cost of one more chain: one checkpoint's estimate at C and at 4C chains, timed in the
  same repeats. Stacking saves only what a call costs beyond its chains, so with each chain
  past the first C costing what one of the 3C added here did, K -> infinity checkpoints gain
  ``chain ceiling`` = 3 t(C) / (t(4C) - t(C)) (below 1: a stacked chain costs more than a
  separate one). It is an extrapolation, not a bound: where a chain costs less still in
  bigger stacks (larger GEMMs), stacking beats it. t(C) includes the full-data L_n(w*),
  which a stack computes for every checkpoint too, so in that respect it is generous.

    nice -n 10 .venv/bin/python benchmarks/bench_trajectory.py   # ~5 min at 2 threads, ~9 at 1
    nice -n 10 .venv/bin/python benchmarks/bench_trajectory.py --draws 5 --repeats 1
"""

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from bench_llc import matmul_gflops  # noqa: E402

from sltrepro.llc import SamplerSettings, estimate_llc, estimate_llc_trajectory  # noqa: E402
from sltrepro.models.attn_lm import AttnOnlyLM  # noqa: E402
from sltrepro.models.dln import DeepLinearNetwork  # noqa: E402
from sltrepro.models.icl_transformer import ICLTransformer, encode, num_params  # noqa: E402
from sltrepro.tasks.regression import sample_batch  # noqa: E402
from sltrepro.train.icl import mse_by_position  # noqa: E402
from sltrepro.train.lm import next_token_loss  # noqa: E402


def icl_case(checkpoints: int, chains: int, draws: int):
    """The icl regression transformer at ``checkpoints`` initialisations, cpu LLC settings."""
    models = []
    for k in range(checkpoints):
        torch.manual_seed(k)
        models.append(ICLTransformer().eval())
    assert num_params(models[0]) == 51_717
    gen = torch.Generator().manual_seed(0)
    xs, ys, _ = sample_batch(4096, noise_var=0.125, generator=gen)
    settings = SamplerSettings(
        num_chains=chains,
        num_draws=draws,
        step_size=3e-4,
        nbeta=66.7,
        localization=6.67,
        batch_size=64,
    )
    return models, mse_by_position, (encode(xs, ys), ys), settings


def dln_case(checkpoints: int, chains: int, draws: int):
    """A [20, 50, 50, 20] deep linear network (4.5k parameters), batch 256."""
    widths = [20, 50, 50, 20]
    gen = torch.Generator().manual_seed(0)
    teacher = DeepLinearNetwork(widths)
    x = torch.randn(20_000, widths[0], generator=gen)
    with torch.no_grad():
        y = teacher(x) + torch.randn(20_000, widths[-1], generator=gen)
    models = []
    for k in range(checkpoints):
        torch.manual_seed(100 + k)
        models.append(DeepLinearNetwork(widths))

    def mse(pred, target):
        return 0.5 * (pred - target).pow(2).sum(-1).mean()

    settings = SamplerSettings(num_chains=chains, num_draws=draws, step_size=1e-4, batch_size=256)
    return models, mse, (x, y), settings


def lm_case(checkpoints: int, chains: int, draws: int):
    """The cpu-shape attention-only LM (vocab 512, d_model 64, 4 x 16 heads, context 128) on
    256 random windows, the cpu LLC settings (batch 8, nbeta 21.7, localization 300, 3e-3)."""
    gen = torch.Generator().manual_seed(0)
    windows = torch.randint(512, (256, 129), generator=gen)
    models = []
    for k in range(checkpoints):
        torch.manual_seed(200 + k)
        models.append(AttnOnlyLM(512, d_model=64, n_heads=4, d_head=16, context=128).eval())
    settings = SamplerSettings(
        num_chains=chains,
        num_draws=draws,
        step_size=3e-3,
        nbeta=21.7147,
        localization=300.0,
        batch_size=8,
    )
    return models, next_token_loss, (windows[:, :-1], windows[:, 1:]), settings


def run_side_by_side(models, loss_fn, data, settings, seeds, group):
    """(trajectory s, grouped s, separate s, largest per-chain difference to separate)."""

    def trajectory(stack):
        return estimate_llc_trajectory(
            None,
            models,
            loss_fn,
            data,
            settings,
            seed=seeds,
            device="cpu",
            verbose=False,
            max_stacked_checkpoints=stack,
        )

    t0 = time.perf_counter()
    traj = trajectory(None)
    t1 = time.perf_counter()
    grouped = trajectory(group)
    t2 = time.perf_counter()
    separate = [
        estimate_llc(m, loss_fn, data, settings, seed=s, device="cpu", verbose=False)
        for m, s in zip(models, seeds, strict=True)
    ]
    t3 = time.perf_counter()
    diff = max(
        float(np.nanmax(np.abs(a.llc_per_chain - b.llc_per_chain)))
        for run in (traj, grouped)
        for a, b in zip(run, separate, strict=True)
    )
    return t1 - t0, t2 - t1, t3 - t2, diff


WIDER = 4  # the chain-ceiling reading times one checkpoint at C and at WIDER * C chains


def one_checkpoint_seconds(models, loss_fn, data, settings, seed):
    """(s, s): one checkpoint's estimate at C chains, then at ``WIDER`` * C chains."""
    times = []
    for chains in (settings.num_chains, WIDER * settings.num_chains):
        start = time.perf_counter()
        wider = settings.replace(num_chains=chains)
        estimate_llc(models[0], loss_fn, data, wider, seed=seed, device="cpu", verbose=False)
        times.append(time.perf_counter() - start)
    return tuple(times)


def separate_gflop(models, loss_fn, data, settings, seeds) -> float:
    """GFLOP of the K separate estimates: one counted call (initial loss, burn-in and draws,
    forward and backward) times K, since every checkpoint does the same arithmetic."""
    with FlopCounterMode(display=False) as counter:
        estimate_llc(models[0], loss_fn, data, settings, seed=seeds[0], device="cpu", verbose=False)
    return counter.get_total_flops() * len(models) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=16)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=20, help="steps per chain (icl)")
    parser.add_argument("--dln-draws", type=int, default=100, help="steps per chain (DLN)")
    parser.add_argument("--lm-checkpoints", type=int, default=4, help="checkpoints (LM)")
    parser.add_argument("--lm-draws", type=int, default=20, help="steps per chain (LM)")
    parser.add_argument("--group", type=int, default=4, help="checkpoints per stack (grouped)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    k, c = args.checkpoints, args.chains
    seeds = [1000 + i for i in range(k)]
    shape = f"{k} ckpts x {c} chains"
    cases = [
        (f"icl regression 51,717 params, {shape} x {args.draws} steps", icl_case(k, c, args.draws)),
        (f"DLN 4.5k [20,50,50,20], {shape} x {args.dln_draws}", dln_case(k, c, args.dln_draws)),
        (
            f"attention-only LM 106,880 params, {args.lm_checkpoints} ckpts x {c} chains "
            f"x {args.lm_draws}",
            lm_case(args.lm_checkpoints, c, args.lm_draws),
        ),
    ]
    print(
        f"{'case':<62} {'trajectory s':>12} {f'grouped {args.group} s':>11} {'separate s':>11} "
        f"{'ratio':>6} {'ratio G':>7} {'max |dLLC|':>10}"
    )
    limits = []
    for name, (models, loss_fn, data, settings) in cases:
        times, matmuls, widths = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # short runs are not healthy
            warm = settings.replace(num_draws=2)
            run_side_by_side(models[:2], loss_fn, data, warm, seeds[:2], 1)
            for _ in range(args.repeats):
                times.append(
                    run_side_by_side(
                        models, loss_fn, data, settings, seeds[: len(models)], args.group
                    )
                )
                matmuls.append(matmul_gflops())
                widths.append(one_checkpoint_seconds(models, loss_fn, data, settings, seeds[0]))
            gflop = separate_gflop(models, loss_fn, data, settings, seeds)
        traj, grouped, sep = (statistics.median(t[i] for t in times) for i in range(3))
        diff = max(t[3] for t in times)
        print(
            f"{name:<62} {traj:>12.2f} {grouped:>11.2f} {sep:>11.2f} {sep / traj:>5.2f}x "
            f"{sep / grouped:>6.2f}x {diff:>10.3g}"
        )
        narrow, wide = (statistics.median(w[i] for w in widths) for i in range(2))
        limits.append((name, gflop / sep, statistics.median(matmuls), narrow, wide))
    c = args.chains
    print(
        f"\n{'case':<62} {'sep GFLOP/s':>11} {'of matmul':>9} {'matmul ceiling':>14} "
        f"{f'1 ckpt {c} ch s':>13} {f'1 ckpt {WIDER * c} ch s':>14} {'chain ceiling':>13}"
    )
    for name, rate, matmul, narrow, wide in limits:
        added = wide - narrow  # the cost of (WIDER - 1) * C more chains
        chain_ceiling = (WIDER - 1) * narrow / added if added > 0 else math.inf
        print(
            f"{name:<62} {rate:>11.1f} {rate / matmul:>8.0%} {matmul / rate:>13.2f}x "
            f"{narrow:>13.2f} {wide:>14.2f} {chain_ceiling:>12.2f}x"
        )


if __name__ == "__main__":
    main()
