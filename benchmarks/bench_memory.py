"""Peak memory per chain of sltrepro.llc.estimate_llc at 2M parameters (issue 20 §2).

Each chain count runs in a fresh child process (peak RSS only grows, so one process per
count): the child builds the deep linear network and its data, records its peak RSS, runs
``estimate_llc`` with that many chains and records the peak again. The growth over the
estimate, fitted linearly against the chain count, splits into a per-chain slope and a
fixed part; both are printed in MB and in copies of the parameters (P float32 values), side
by side for every count in one run.

    .venv/bin/python benchmarks/bench_memory.py                   # ~1-2 min on 2 cores
    .venv/bin/python benchmarks/bench_memory.py --chains 1 2 4 --batch 100
"""

import argparse
import json
import resource
import subprocess
import sys

import numpy as np
import torch

from sltrepro.llc import default_nbeta, estimate_llc
from sltrepro.models.dln import DeepLinearNetwork

WIDTHS = [500, 1000, 1000, 500]  # 2.0M parameters, bench_llc.py's "2M" case


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(chains: int, batch: int, draws: int, samples: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = DeepLinearNetwork(WIDTHS)
    x = torch.randn(samples, WIDTHS[0])
    with torch.no_grad():
        y = net(x) + torch.randn(samples, WIDTHS[-1])
    before = peak_mb()
    estimate_llc(
        net,
        lambda pred, target: 0.5 * (pred - target).pow(2).sum(-1).mean(),
        (x, y),
        num_chains=chains,
        num_draws=draws,
        step_size=1e-5,
        nbeta=default_nbeta(samples),
        localization=1.0,
        batch_size=batch,
        device="cpu",
        verbose=False,
    )
    params = sum(p.numel() for p in net.parameters())
    return {"chains": chains, "params": params, "before_mb": before, "after_mb": peak_mb()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch, args.draws, args.samples)))
        return
    rows = []
    for chains in args.chains:
        cmd = [sys.executable, __file__, "--child", str(chains), "--batch", str(args.batch)]
        cmd += ["--draws", str(args.draws), "--samples", str(args.samples)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    copy_mb = rows[0]["params"] * 4 / 2**20
    print(f"{rows[0]['params']:,} parameters: one float32 copy = {copy_mb:.1f} MB")
    print(f"batch {args.batch}, {args.draws} draws, {args.samples} samples, one thread")
    growth = np.array([r["after_mb"] - r["before_mb"] for r in rows])
    chains = np.array([r["chains"] for r in rows])
    for r, g in zip(rows, growth, strict=True):
        print(
            f"{r['chains']:3d} chains: peak {r['after_mb']:7.1f} MB, growth over the estimate "
            f"{g:7.1f} MB = {g / copy_mb:5.1f} copies ({g / copy_mb / r['chains']:4.1f} per chain)"
        )
    if len(rows) > 1:
        slope, fixed = np.polyfit(chains, growth, 1)
        print(
            f"fit: {slope:.1f} MB per chain = {slope / copy_mb:.2f} parameter copies per chain, "
            f"plus {fixed:.1f} MB fixed ({fixed / copy_mb:.1f} copies)"
        )


if __name__ == "__main__":
    main()
