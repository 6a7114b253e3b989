"""SGLD, RMSprop-SGLD and SGNHT side by side on cases with a known learning coefficient.

Every sampler runs the same cases, chains and steps in one process, one after another per
(case, seed): two normal crossings of Lau et al. Table 1, two reduced-rank regressions and
two deep linear networks at random true parameters of rank 1 (Aoyagi's lambda), full batch,
n = 1000. Each sampler gets a small grid of step sizes (its useful range differs: RMSprop-
SGLD multiplies the step by a preconditioner <= 1, SGNHT's step is h^2). Printed per run:
the relative error (lambda_hat - lambda) / lambda, seconds, and the health verdict; then,
per sampler and step size, the median |relative error| over cases and seeds, the median
seconds per estimate, and |error| per second of compute is their product's inverse
reading: lower error at equal seconds is better (all samplers take the same number of
gradient steps, so seconds differ only by the update's own cost).

    .venv/bin/python benchmarks/bench_samplers.py              # ~5-10 min on 2 cores
    .venv/bin/python benchmarks/bench_samplers.py --quick      # one seed, fewer steps
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch

from sltrepro.llc import SamplerSettings, estimate_llc
from sltrepro.models.normal_crossing import MonomialRegression, gaussian_nll, monomial_data
from sltrepro.papers.llc_estimator.pipeline import dln_data, true_dln
from sltrepro.theory import dln_learning_coefficient, normal_crossing_lambda

STEP_SIZES = {
    "sgld": (2e-4, 5e-4, 1e-3),
    "rmsprop_sgld": (1e-3, 3e-3, 1e-2),
    "sgnht": (1e-4, 3e-4, 1e-3),
}
NORMAL_CROSSINGS = {"w1w2_3": (1, 3), "w2": (0, 1)}
DLNS = {
    "rrr_3_2_3_r1": [3, 2, 3],
    "rrr_5_3_5_r1": [5, 3, 5],
    "dln_5_3_3_5_r1": [5, 3, 3, 5],
    "dln_10_3_3_3_10_r1": [10, 3, 3, 3, 10],
}


def cases(seed: int, n: int = 1000):
    for name, powers in NORMAL_CROSSINGS.items():
        truth = float(normal_crossing_lambda(powers)[0])
        data = monomial_data(n, seed=seed)
        yield name, MonomialRegression(powers), gaussian_nll(0.5), data, truth
    for name, widths in DLNS.items():
        net = true_dln(widths, 1, seed)
        truth = float(dln_learning_coefficient(widths, 1)[0])
        yield name, net, gaussian_nll(1.0), dln_data(net, n, seed), truth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--burnin", type=int, default=200)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1 seed, 400 draws, 100 burn-in")
    parser.add_argument("--out", default=None, help="also write the per-run table as CSV")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.draws, args.burnin = 1, 400, 100
    torch.set_num_threads(1)
    base = SamplerSettings(
        num_chains=args.chains, num_draws=args.draws, num_burnin=args.burnin, batch_size=10**9
    )
    rows, start = [], time.perf_counter()
    for seed in range(args.seeds):
        for name, model, loss_fn, data, truth in cases(seed):
            for sampler, steps in STEP_SIZES.items():
                for eps in steps:
                    settings = base.replace(sampler=sampler, step_size=eps)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        try:
                            res = estimate_llc(
                                model, loss_fn, data, settings, seed=seed, verbose=False
                            )
                        except RuntimeError as err:  # all chains diverged
                            res = err.result
                    rows.append(
                        {
                            "case": name,
                            "seed": seed,
                            "sampler": sampler,
                            "step_size": eps,
                            "truth": truth,
                            "llc_mean": res.llc_mean,
                            "rel_error": (res.llc_mean - truth) / truth,
                            "seconds": res.seconds,
                            "healthy": res.healthy,
                            "rhat": res.rhat,
                            "ess_bulk": res.ess_bulk,
                        }
                    )
                    r = rows[-1]
                    print(
                        f"{name:20s} seed {seed} {sampler:12s} eps {eps:<7g} "
                        f"lambda {truth:7.3f} hat {r['llc_mean']:8.3f} "
                        f"rel {r['rel_error']:+.3f} {r['seconds']:5.2f} s "
                        f"{'healthy' if r['healthy'] else 'UNHEALTHY'}",
                        flush=True,
                    )
    table = pd.DataFrame(rows)
    table["abs_rel_error"] = table["rel_error"].abs()
    per = table.groupby(["sampler", "step_size"]).agg(
        median_abs_rel_error=("abs_rel_error", "median"),
        mean_rel_error=("rel_error", "mean"),
        healthy_fraction=("healthy", "mean"),
        median_seconds=("seconds", "median"),
    )
    per["error_x_seconds"] = per["median_abs_rel_error"] * per["median_seconds"]
    pd.set_option("display.width", 200)
    print(f"\nper sampler and step size ({len(table)} runs, {time.perf_counter() - start:.0f} s):")
    print(per.round(3).to_string())
    best = per.reset_index().loc[
        per.reset_index().groupby("sampler")["median_abs_rel_error"].idxmin()
    ]
    print("\neach sampler at its best step size (picked on these same runs):")
    print(best.round(3).to_string(index=False))
    by_case = table.merge(best[["sampler", "step_size"]]).pivot_table(
        index="case", columns="sampler", values="rel_error", aggfunc="mean"
    )
    print("\nmean relative error per case at those step sizes:")
    print(by_case.round(3).to_string())
    if args.out:
        table.to_csv(args.out, index=False)
    return np.isfinite(table["llc_mean"]).all()


if __name__ == "__main__":
    main()
