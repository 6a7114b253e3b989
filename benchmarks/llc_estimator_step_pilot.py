"""The step-size pilot behind the llc_estimator cpu step sizes (papers/llc_estimator/README.md,
"cpu step sizes"): for each case and step size, the estimate of seeds 0 and 1 at the cpu
sampler block, its health verdict, and (normal-crossing and two-minimum cases) the
quadrature reference of the tempered posterior it samples.

    nice -n 10 .venv/bin/python benchmarks/llc_estimator_step_pilot.py w1w2_3,w1 5e-4,1e-3,2e-3
    nice -n 10 .venv/bin/python benchmarks/llc_estimator_step_pilot.py dln_5_3_3_5_r1 2e-4,3e-4

Each estimate takes 10-30 s on one core.
"""

import argparse
import logging

import pandas as pd
import torch

from sltrepro.config import load_profile
from sltrepro.papers.llc_estimator import pipeline


def estimate(cfg: dict, name: str, step_size: float, index: int) -> dict:
    """One seed's estimate of case ``name`` (a model or a DLN case) at ``step_size``."""
    log = logging.getLogger("pilot")
    if name in {m["name"] for m in cfg["models"]}:
        spec = pipeline._by_name(cfg["models"], name, "model")
        run = pipeline.normal_crossing_run(cfg, spec, index, "cpu", log, step_size)
    else:
        case = pipeline._by_name(cfg["dln_cases"], name, "dln case")
        run = pipeline.dln_run(cfg, case, index, "cpu", log, step_size)
        run["reference"] = float("nan")
    keys = ["llc_mean", "reference", "llc_mcse", "rhat", "ess_bulk", "mala_acceptance"]
    return {"case": name, "eps": step_size, "seed": index, **{k: run[k] for k in keys},
            "trace_drift": run["trace_drift"], "healthy": run["healthy"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", help="comma-separated case names of the cpu profile")
    parser.add_argument("step_sizes", help="comma-separated step sizes")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_profile("llc_estimator", "cpu")
    rows = []
    for name in args.cases.split(","):
        for step_size in map(float, args.step_sizes.split(",")):
            for index in range(args.seeds):
                rows.append(estimate(cfg, name, step_size, index))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1))
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
