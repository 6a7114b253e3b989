"""Speed of sltrepro.llc.estimate_llc against a one-chain-after-another SGLD loop.

Runs side by side in one process, on the same deep linear network, chains, draws and batch:

- ``vectorised``: :func:`sltrepro.llc.estimate_llc` (all chains in one vmapped step);
- ``sequential``: a plain PyTorch loop that runs each chain to the end before the next, one
  optimizer-style SGLD update per parameter tensor and a ``loss.item()`` per step (how
  devinterp 1.3.2 runs chains);
- ``devinterp``: devinterp 1.3.2's own ``estimate_learning_coeff`` with its SGLD, when the
  ``bench`` extra is installed (``make bench`` installs it and runs this file).

Each repeat runs the three back to back, so every ratio is of a side-by-side pair (shared
machines are noisy). Prints chain-steps per second (medians over ``--repeats``), the median
ratios and their range, and the estimator's achieved GFLOP/s as a share of a plain 2048^2
matmul timed just before each of its runs, beside issue 20's goal for that size; then the
variance reduction of paired minibatch readings. The sizes are issue 20's table.

    .venv/bin/python benchmarks/bench_llc.py            # ~2-4 min on 2 cores
    .venv/bin/python benchmarks/bench_llc.py --quick    # fewer steps
"""

import argparse
import math
import time
import warnings

import numpy as np
import torch

from sltrepro.llc import default_nbeta, estimate_llc
from sltrepro.models.dln import DeepLinearNetwork

SIZES = {  # name: (widths, chains, steps, batch), as in issue 20's table
    "5k": ([20, 50, 50, 20], 16, 200, 256),
    "150k": ([200, 250, 250, 200], 16, 40, 64),
    "2M": ([500, 1000, 1000, 500], 4, 8, 500),
}
MATMUL_SHARE_GOAL = {"5k": 0.50, "150k": 0.40, "2M": 0.75}  # issue 20 §2


def mse(pred, target):
    return 0.5 * (pred - target).pow(2).sum(-1).mean()


def problem(widths, n=20_000, seed=0):
    torch.manual_seed(seed)
    net = DeepLinearNetwork(widths)
    x = torch.randn(n, widths[0])
    with torch.no_grad():
        y = net(x) + torch.randn(n, widths[-1])
    return net, (x, y)


def dln_flops_per_step(widths, batch):
    """Forward 2BP, weight gradients 2BP, input gradients 2B * (P minus the first layer)."""
    sizes = [a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return 2 * batch * (2 * sum(sizes) + sum(sizes[1:]))


def sequential_sgld(net, data, *, chains, steps, batch, eps, nbeta, gamma, seed=0):
    """One chain after another: a copy of the model per chain, per-tensor updates."""
    x, y = data
    gen = torch.Generator().manual_seed(seed)
    anchor = [p.detach().clone() for p in net.parameters()]
    losses = np.zeros((chains, steps))
    for c in range(chains):
        model = DeepLinearNetwork(net.widths)
        model.load_state_dict(net.state_dict())
        for t in range(steps):
            idx = torch.randint(len(x), (batch,), generator=gen)
            loss = mse(model(x[idx]), y[idx])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p, p0 in zip(model.parameters(), anchor, strict=True):
                    drift = nbeta * p.grad + gamma * (p - p0)
                    p.add_(drift, alpha=-0.5 * eps)
                    p.add_(torch.randn(p.shape, generator=gen), alpha=math.sqrt(eps))
            losses[c, t] = loss.item()
    return losses


def devinterp_installed() -> bool:
    try:
        import devinterp  # noqa: F401
    except ImportError:
        return False
    return True


def devinterp_rate(net, data, *, chains, steps, batch, eps, nbeta, gamma):
    """Chain-steps/s of devinterp 1.3.2's estimate_learning_coeff (chains one after another,
    its SGLD optimizer, its own minibatch loader)."""
    from devinterp.optim import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*data), batch_size=batch, shuffle=True
    )
    start = time.perf_counter()
    estimate_learning_coeff(
        net,
        loader,
        evaluate=lambda model, xy: mse(model(xy[0]), xy[1]),
        sampling_method=SGLD,
        optimizer_kwargs={"lr": eps, "localization": gamma, "nbeta": nbeta},
        num_chains=chains,
        num_draws=steps,
        num_burnin_steps=0,
        init_loss=0.0,  # as for ours: time sampling only
        device="cpu",
        verbose=False,
    )
    return chains * steps / (time.perf_counter() - start)


def matmul_gflops(size=2048, repeats=4):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def bench_size(name, widths, chains, steps, batch, repeats, eps=1e-5, gamma=1.0):
    """Runs the loops back to back ``repeats`` times; rates are medians over the repeats and
    ratio ranges are over the side-by-side sets (shared machines are noisy)."""
    net, data = problem(widths)
    nbeta = default_nbeta(len(data[0]))
    params = sum(p.numel() for p in net.parameters())
    kw = dict(chains=chains, steps=steps, batch=batch, eps=eps, nbeta=nbeta, gamma=gamma)
    common = dict(num_chains=chains, num_draws=steps, step_size=eps, nbeta=nbeta)
    common.update(localization=gamma, batch_size=batch, device="cpu", verbose=False)
    common.update(init_loss=0.0)  # time sampling only; L_n(w*) is one full-data pass
    with_devinterp = devinterp_installed()
    sequential_sgld(net, data, **{**kw, "chains": 1, "steps": 2})  # warm-up
    estimate_llc(net, mse, data, **{**common, "num_draws": 2})
    if with_devinterp:
        devinterp_rate(net, data, **{**kw, "chains": 1, "steps": 2})
    seq, vec, matmul, dvi = [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        sequential_sgld(net, data, **kw)
        seq.append(chains * steps / (time.perf_counter() - start))
        matmul.append(matmul_gflops())
        vec.append(estimate_llc(net, mse, data, **common).chain_steps_per_second)
        if with_devinterp:
            dvi.append(devinterp_rate(net, data, **kw))
    vec = np.array(vec)
    ratios = vec / np.array(seq)
    gflops = vec * dln_flops_per_step(widths, batch) / 1e9
    row = dict(size=name, params=params, chains=chains, steps=steps, batch=batch)
    row.update(sequential=float(np.median(seq)), vectorised=float(np.median(vec)))
    row.update(ratio=float(np.median(ratios)), ratio_min=ratios.min(), ratio_max=ratios.max())
    row["gflops"] = float(np.median(gflops))
    row["matmul_share"] = float(np.median(gflops / np.array(matmul)))
    row["matmul"] = float(np.median(matmul))
    row["devinterp"] = float(np.median(dvi)) if dvi else None
    row["devinterp_ratios"] = vec / np.array(dvi) if dvi else None
    return row


def paired_variance(steps=400):
    """Per-draw variance of the LLC reading with and without pairing, same chains."""
    widths = [10, 5, 10]
    net, data = problem(widths, n=5000)
    kw = dict(num_chains=4, num_draws=steps, num_burnin=100, step_size=2e-4, batch_size=64)
    kw.update(seed=1, verbose=False)
    plain = estimate_llc(net, mse, data, **kw)
    paired = estimate_llc(net, mse, data, paired=True, **kw)
    return plain, paired


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps")
    parser.add_argument(
        "--sizes", default=",".join(SIZES), help="comma list of " + str(list(SIZES))
    )
    parser.add_argument("--repeats", type=int, default=3, help="side-by-side sets per size")
    args = parser.parse_args()
    # chains this short are unhealthy by design: only their speed is read here
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not devinterp_installed():
        print("devinterp is not installed (`make bench` installs the bench extra): no column")
    header = (
        f"{'size':>5} {'params':>8} {'chains':>6} {'steps':>5} {'batch':>5} "
        f"{'seq ch-st/s':>11} {'vec ch-st/s':>11} {'ratio':>6} {'range':>11} "
        f"{'devinterp':>9} {'ratio':>6} {'range':>11} "
        f"{'GFLOP/s':>8} {'matmul':>6} {'%matmul':>7} {'goal':>5}"
    )
    print(header)
    for name in args.sizes.split(","):
        widths, chains, steps, batch = SIZES[name]
        steps = max(4, steps // 4) if args.quick else steps
        r = bench_size(name, widths, chains, steps, batch, args.repeats)
        if r["devinterp"] is None:
            dv = f"{'-':>9} {'-':>6} {'-':>11}"
        else:
            d = r["devinterp_ratios"]
            dv = f"{r['devinterp']:>9.1f} {np.median(d):>6.2f} {d.min():>5.2f}-{d.max():<5.2f}"
        print(
            f"{r['size']:>5} {r['params']:>8} {r['chains']:>6} {r['steps']:>5} {r['batch']:>5} "
            f"{r['sequential']:>11.1f} {r['vectorised']:>11.1f} {r['ratio']:>6.2f} "
            f"{r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f} {dv} "
            f"{r['gflops']:>8.1f} {r['matmul']:>6.0f} {100 * r['matmul_share']:>6.0f}% "
            f"{100 * MATMUL_SHARE_GOAL[name]:>4.0f}%",
            flush=True,
        )
    plain, paired = paired_variance(100 if args.quick else 400)
    print(
        "paired minibatch readings, DLN [10,5,10], batch 64, 4 chains: per-draw variance "
        f"{plain.delta_trace.var():.3g} -> {paired.delta_trace.var():.3g} "
        f"({plain.delta_trace.var() / paired.delta_trace.var():.0f}x lower); LLC "
        f"{plain.llc_mean:.2f} +- {plain.llc_std:.2f} (plain) vs "
        f"{paired.llc_mean:.2f} +- {paired.llc_std:.2f} (paired)"
    )


if __name__ == "__main__":
    main()
