"""Does the LLC health verdict separate estimates that land on a known lambda from ones
that do not?

Runs known-lambda cases (a regular model, two normal crossings of Lau et al. Table 1, a
reduced-rank regression with Aoyagi's lambda) at the llc_estimator smoke settings and at
settings that cannot equilibrate (too few steps, a step size far too small, minibatch
readings without pairing), and prints, per run, the estimate against the truth beside every
diagnostic and the verdict. The thresholds in sltrepro.llc_diagnostics are read off this
table (papers/llc_estimator/README.md, "Diagnostics and the health verdict").

    .venv/bin/python benchmarks/health_study.py          # ~2-4 min on 2 cores
"""

import argparse
import warnings

import pandas as pd
import torch

from sltrepro.llc import estimate_llc
from sltrepro.models.normal_crossing import MonomialRegression, gaussian_nll, monomial_data
from sltrepro.papers.llc_estimator.pipeline import dln_data, true_dln
from sltrepro.theory import dln_learning_coefficient, normal_crossing_lambda


def regular_case(n=1000, seed=0):
    """Linear regression with bias at its least-squares fit (d = 4, lambda = 2)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.randn(3, 1, generator=gen) + torch.randn(n, 1, generator=gen)
    model = torch.nn.Linear(3, 1)
    sol = torch.linalg.lstsq(torch.cat([x, torch.ones(n, 1)], 1), y).solution
    with torch.no_grad():
        model.weight.copy_(sol[:3].T)
        model.bias.copy_(sol[3])
    return model, gaussian_nll(1.0), (x, y), 2.0


def cases(seed):
    yield ("regular_d4", *regular_case(seed=seed))
    for name, powers in (("w1w2_3", (1, 3)), ("w2", (0, 1))):
        truth = float(normal_crossing_lambda(powers)[0])
        data = monomial_data(1000, seed=seed)
        yield name, MonomialRegression(powers), gaussian_nll(0.5), data, truth
    net = true_dln([3, 2, 3], 1, seed)
    truth = float(dln_learning_coefficient([3, 2, 3], 1)[0])
    yield "rrr_3_2_3_r1", net, gaussian_nll(1.0), dln_data(net, 1000, seed), truth


SETTINGS = {  # the llc_estimator smoke sampler block, then ways to break it
    "smoke": dict(num_draws=600, num_burnin=100, step_size=5e-4, batch_size=1000),
    "few_steps": dict(num_draws=20, num_burnin=0, step_size=5e-4, batch_size=1000),
    "tiny_eps": dict(num_draws=600, num_burnin=100, step_size=1e-6, batch_size=1000),
    "minibatch_unpaired": dict(num_draws=600, num_burnin=100, step_size=5e-4, batch_size=32),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table as CSV here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in range(args.seeds):
        for name, model, loss_fn, data, truth in cases(seed):
            for setting, kw in SETTINGS.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    res = estimate_llc(
                        model, loss_fn, data, num_chains=4, localization=1.0, seed=seed,
                        verbose=False, **kw,
                    )  # fmt: skip
                row = res.summary_row()
                rows.append(
                    {
                        "case": name,
                        "setting": setting,
                        "seed": seed,
                        "truth": truth,
                        "llc_mean": row["llc_mean"],
                        "rel_error": (row["llc_mean"] - truth) / truth,
                        **{
                            k: row[k]
                            for k in ("llc_mcse", "rhat", "ess_bulk", "ess_tail", "trace_drift")
                        },
                        "loss_budget": row["loss_budget"],
                        "mala": row["mala_acceptance"],
                        "healthy": row["healthy"],
                    }
                )
                print(pd.DataFrame(rows[-1:]).to_string(header=len(rows) == 1, index=False))
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
