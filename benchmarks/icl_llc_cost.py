"""Cost and health of one icl_landscape LLC estimate per sampler setting (issue 18, §1).

Trains the regression transformer for ``--steps`` steps at the cpu profile's batch and peak
LR (a short stand-in for the cpu run: the cost of an SGLD step does not depend on where the
weights are, the health verdict does), then estimates the LLC of the checkpoints ``--at``
(default: step 0 and the last; the cpu profile's log-spaced steps are saved, so early ones
such as 5 or 59 can be asked for), one checkpoint per call, with each setting of
``SETTINGS`` (or those ``--settings`` picks by index) and the cpu profile's data and
sampler keys otherwise. Prints, per setting and checkpoint: seconds,
LLC, chain spread, R-hat, bulk ESS, the equilibration budget nbeta*eps*T and the health
verdict with its reasons. ``--checkpoints`` reads the checkpoints of a run the DAG trained
(its ``checkpoints.pt``) instead of training a stand-in, for the late minima of the full-length
run; the data and chain seeds are those of the DAG's estimates for ``--seed`` (default 0; the
training stand-in is always seed 0's). Run at one thread so the seconds are per core:

    nice -n 10 .venv/bin/python benchmarks/icl_llc_cost.py            # ~15 min at load 2-4
    nice -n 10 .venv/bin/python benchmarks/icl_llc_cost.py --settings 1 --at 2 5 59
    .venv/bin/python benchmarks/icl_llc_cost.py --settings 4 5 --at 12000 24000 \
        --checkpoints results/cpu/icl_landscape/regression/train/seed0/checkpoints.pt
    .venv/bin/python benchmarks/icl_llc_cost.py --settings 5 9 --at 44 155 547 --seed 1 \
        --checkpoints results/cpu/icl_landscape/regression/train/seed1/checkpoints.pt
"""

import argparse
import tempfile
import time

import torch
import yaml

from sltrepro.papers.icl_landscape import pipeline
from sltrepro.train.icl import TrainSpec, train

# (name, overrides of the cpu profile's regression.llc block, whatever it now says)
SETTINGS = [
    ("cpu before: 4 x 80, no burn-in, unpaired", dict(num_draws=80, num_burnin=0, paired=False)),
    ("4 x (100 + 400), paired", {"num_draws": 400, "num_burnin": 100, "paired": True}),
    ("4 x (100 + 400), unpaired", {"num_draws": 400, "num_burnin": 100, "paired": False}),
    ("4 x (200 + 800), paired", {"num_draws": 800, "num_burnin": 200, "paired": True}),
    ("4 x (300 + 1200), paired", {"num_draws": 1200, "num_burnin": 300, "paired": True}),
    ("4 x (400 + 800), paired", {"num_draws": 800, "num_burnin": 400, "paired": True}),
    ("4 x (400 + 400), paired", {"num_draws": 400, "num_burnin": 400, "paired": True}),
    ("4 x (100 + 400), paired, eps 1e-3", dict(num_draws=400, num_burnin=100, step_size=1e-3)),
    ("4 x (200 + 800), paired, eps 1e-3", dict(num_draws=800, num_burnin=200, step_size=1e-3)),
    ("4 x (400 + 1600), paired", {"num_draws": 1600, "num_burnin": 400, "paired": True}),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--config", default="papers/icl_landscape/config.yaml")
    parser.add_argument("--at", type=int, nargs="*", help="checkpoint steps to estimate")
    parser.add_argument("--settings", type=int, nargs="*", help="indices into SETTINGS")
    parser.add_argument("--checkpoints", help="a trained run's checkpoints.pt (skips training)")
    parser.add_argument(
        "--seed", type=int, default=0, help="the run's training seed: its LLC data and chain seeds"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(args.config))["cpu"]["regression"]
    if args.checkpoints:
        states = torch.load(args.checkpoints, weights_only=False)
        args.steps = max(states)
    else:
        spec = TrainSpec(
            steps=args.steps,
            batch_size=cfg["batch_size"],
            peak_lr=cfg["peak_lr"],
            num_log_checkpoints=cfg["num_log_checkpoints"],
            num_linear_checkpoints=2,
            num_tasks=None,
            noise_var=cfg["noise_var"],
        )
        torch.manual_seed(0)
        model = pipeline.ICLTransformer()
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            states = train(model, spec, tmp, seed=0)["checkpoints"]
        print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s (1 thread)")
    data = pipeline.llc_data(cfg, args.seed)
    picked = [SETTINGS[i] for i in args.settings] if args.settings else SETTINGS
    for name, overrides in picked:
        llc_cfg = {**cfg["llc"], **overrides}
        for step in args.at or (0, args.steps):
            model = pipeline.load_model(states[step])
            start = time.perf_counter()
            chain = [pipeline.chain_seed(args.seed, step)]
            (row,), _ = pipeline.checkpoint_llcs([model], data, llc_cfg, chain, "cpu")
            seconds = time.perf_counter() - start
            print(
                f"{name:42s} step {step:5d}: {seconds:6.1f} s  LLC {row['llc']:6.2f} "
                f"(chain sd {row['llc_chain_std']:.2f})  R-hat {row['rhat']:.3f}  "
                f"ESS {row['ess_bulk']:.0f}  budget {row['loss_budget']:.1f}  "
                f"healthy {row['healthy']}  {row['health_reasons']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
