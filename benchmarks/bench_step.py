"""Where an SGLD step of the LLC estimator spends its time, and what issue 20 §2's remedies buy.

For each of bench_llc.py's deep linear network sizes (issue 20's table), in one process:

1. **Profile.** The estimator's own pieces, each timed alone over the same steps at the
   estimator's shapes: the minibatch gather, forward + backward
   (:func:`sltrepro.llc_forward.choose_forward` and ``autograd.grad``), the Gaussian noise
   (``torch.randn`` from a seeded generator, as the estimator draws it) and the update
   (:class:`sltrepro.sgmcmc.SGLD`); beside them a whole step of
   :func:`sltrepro.llc.estimate_llc`, whose remainder is the observers (traces, divergence,
   MALA) and Python.
2. **torch.compile** of the step (forward, backward and the SGLD update as one functional
   Inductor graph, noise drawn outside so the random stream stays the same) against the
   estimator's eager step (``autograd.grad``, then the kernel), side by side; the compile
   time is printed too. The compiled graph rounds differently from the eager step.
3. **Noise on a helper thread.** The next step's minibatch indices and noise drawn on a
   second Python thread while this step's forward and backward run; every generator is
   still read in the same order, so the chains are bit-identical (checked).
4. **compile=True end to end**: :func:`sltrepro.llc.estimate_llc` with and without
   ``SamplerSettings.compile`` on the icl_landscape regression transformer and
   attention-only LM at their cpu LLC settings (bench_trajectory.py's cases), side by
   side, with the largest difference between their per-chain estimates.
5. **Cheaper noise.** Nanoseconds per float32 normal: torch's mt19937 ``randn``, its
   ``rand`` (the uniform bits alone), ``randn`` inside an Inductor graph (Philox) and
   numpy's PCG64 ``standard_normal``.

    nice -n 10 .venv/bin/python benchmarks/bench_step.py               # ~2 min, 2 cores
    nice -n 10 .venv/bin/python benchmarks/bench_step.py --threads 1 --sizes 150k
"""

import argparse
import math
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.func import grad_and_value

sys.path.insert(0, str(Path(__file__).parent))
from bench_llc import SIZES, dln_flops_per_step, matmul_gflops, mse, problem  # noqa: E402
from bench_trajectory import icl_case, lm_case  # noqa: E402

from sltrepro import sgmcmc  # noqa: E402
from sltrepro.llc import default_nbeta, estimate_llc  # noqa: E402
from sltrepro.llc_forward import FlatModel, choose_forward  # noqa: E402

EPS, GAMMA = 1e-5, 1.0


def per_step_ms(fn, steps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1e3


class Case:
    """The estimator's pieces for one DLN size, C chains, batch B."""

    def __init__(self, name):
        widths, self.chains, self.steps, self.batch = SIZES[name]
        self.widths = widths
        net, (self.x, self.y) = problem(widths)
        self.net, self.n = net, len(self.x)
        self.nbeta = default_nbeta(self.n)
        self.fm = FlatModel(net, mse, torch.device("cpu"))
        self.forward, _ = choose_forward(self.fm, self.x, self.y, full_batch=False, vectorize=None)
        self.kernel = sgmcmc.SGLD(self.fm.w0, step_size=EPS, nbeta=self.nbeta, localization=GAMMA)
        self.gen = torch.Generator().manual_seed(0)
        rows, p = self.chains, self.fm.num_params
        self.w = self.fm.w0.expand(rows, -1).clone()
        self.noise = torch.empty(rows, p)

    def gather(self, gen=None):
        idx = torch.randint(self.n, (self.chains * self.batch,), generator=gen or self.gen)
        return tuple(
            t.index_select(0, idx).view(self.chains, self.batch, *t.shape[1:])
            for t in (self.x, self.y)
        )

    def draw_noise(self, gen=None):
        return torch.randn(self.noise.shape, generator=gen or self.gen, out=self.noise)

    def grad(self, w, xb, yb):
        w = w.detach().requires_grad_(True)
        losses = self.forward.losses(w, xb, yb)
        (grad,) = torch.autograd.grad(losses.sum(), w)
        return grad, losses.detach()

    def step(self, w, xb, yb, noise):
        grad, losses = self.grad(w, xb, yb)
        with torch.no_grad():
            state, _ = self.kernel.step(sgmcmc.SGMCMCState(position=w), grad, noise)
        return state.position, losses

    def estimator_ms(self) -> float:
        kw = dict(num_chains=self.chains, num_draws=self.steps, step_size=EPS, nbeta=self.nbeta)
        kw.update(localization=GAMMA, batch_size=self.batch, verbose=False, init_loss=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short chains are unhealthy; only speed is read
            estimate_llc(self.net, mse, (self.x, self.y), **{**kw, "num_draws": 2})
            result = estimate_llc(self.net, mse, (self.x, self.y), **kw)
        return self.chains / result.chain_steps_per_second * 1e3


def profile(case: Case, steps: int, rounds: int = 3) -> dict:
    """Per-step ms of each piece, the median over ``rounds`` round-robin timings."""
    xb, yb = case.gather()
    grad, _ = case.grad(case.w, xb, yb)
    state = sgmcmc.SGMCMCState(position=case.w)
    pieces = {
        "gather": lambda: per_step_ms(case.gather, steps),
        "fwd+bwd": lambda: per_step_ms(lambda: case.grad(case.w, xb, yb), steps),
        "noise": lambda: per_step_ms(case.draw_noise, steps),
        "update": lambda: per_step_ms(lambda: case.kernel.step(state, grad, case.noise), steps),
        "estimator": case.estimator_ms,
    }
    times = {k: [] for k in pieces}
    for _ in range(rounds):
        for k, timing in pieces.items():
            times[k].append(timing())
    row = {k: statistics.median(v) for k, v in times.items()}
    row["other"] = row["estimator"] - sum(row[k] for k in ("gather", "fwd+bwd", "noise", "update"))
    return row


def compiled_vs_eager(case: Case, steps: int) -> tuple[float, float, float]:
    """(eager ms, compiled ms, compile s): the estimator's step (autograd.grad, then
    the SGLD kernel) against the same formula as one compiled functional graph."""
    fm = case.fm
    shrink, drift_scale = 0.5 * EPS * GAMMA, -0.5 * EPS * case.nbeta

    def functional_step(w, xb, yb, noise):
        def total(w):
            losses = case.forward.losses(w, xb, yb)
            return losses.sum(), losses

        grad, losses = grad_and_value(total, has_aux=True)(w)
        new = w * (1 - shrink) + fm.w0 * shrink + drift_scale * grad + math.sqrt(EPS) * noise
        return new, losses

    compiled = torch.compile(functional_step, dynamic=False)
    xb, yb = case.gather()
    noise = case.draw_noise()
    start = time.perf_counter()
    compiled(case.w, xb, yb, noise)
    compile_s = time.perf_counter() - start
    eager, fast = [], []
    for _ in range(3):
        eager.append(per_step_ms(lambda: case.step(case.w, xb, yb, noise), steps))
        fast.append(per_step_ms(lambda: compiled(case.w, xb, yb, noise), steps))
    return statistics.median(eager), statistics.median(fast), compile_s


def prefetch_vs_inline(case: Case, steps: int) -> tuple[float, float, bool]:
    """(inline ms, prefetched ms, same final chains) over ``steps`` steps from one seed."""

    def draws(gen):
        xb, yb = case.gather(gen)
        return xb, yb, case.draw_noise(gen).clone()

    def inline():
        gen, w = torch.Generator().manual_seed(1), case.w
        start = time.perf_counter()
        for _ in range(steps):
            xb, yb, noise = draws(gen)
            w, _ = case.step(w, xb, yb, noise)
        return (time.perf_counter() - start) / steps * 1e3, w

    def prefetched(pool):
        gen, w = torch.Generator().manual_seed(1), case.w
        start = time.perf_counter()
        pending = pool.submit(draws, gen)
        for t in range(steps):
            xb, yb, noise = pending.result()
            if t + 1 < steps:  # the helper reads the generator while this step computes
                pending = pool.submit(draws, gen)
            w, _ = case.step(w, xb, yb, noise)
        return (time.perf_counter() - start) / steps * 1e3, w

    with ThreadPoolExecutor(1) as pool:
        a, b, same = [], [], True
        for _ in range(3):
            ms, w_inline = inline()
            a.append(ms)
            ms, w_prefetched = prefetched(pool)
            b.append(ms)
            same &= torch.equal(w_inline, w_prefetched)
    return statistics.median(a), statistics.median(b), same


def compile_end_to_end(case, draws: int, repeats: int = 2) -> tuple[float, float, float, float]:
    """(eager s, compiled s, first compiled call s, largest per-chain LLC difference)."""
    models, loss_fn, data, settings = case(1, 4, draws)
    settings = settings.replace(mala_every=0)

    def estimate(compile_graph):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short chains are unhealthy; only speed is read
            result = estimate_llc(
                models[0], loss_fn, data, settings.replace(compile=compile_graph), seed=0,
                device="cpu", verbose=False,
            )  # fmt: skip
        return time.perf_counter() - start, result

    first, _ = estimate(True)
    eager, fast = [], []
    for _ in range(repeats):
        seconds, plain = estimate(False)
        eager.append(seconds)
        seconds, compiled = estimate(True)
        fast.append(seconds)
    diff = float(np.max(np.abs(plain.llc_per_chain - compiled.llc_per_chain)))
    return statistics.median(eager), statistics.median(fast), first, diff


def rng_ns_per_number(n: int = 2_000_000, repeats: int = 10) -> dict:
    gen, out = torch.Generator().manual_seed(0), torch.empty(n)
    buf, rng = np.empty(n, dtype=np.float32), np.random.default_rng(0)
    inductor_randn = torch.compile(lambda: torch.randn(n))
    inductor_randn()
    fns = {
        "torch randn (mt19937)": lambda: torch.randn(n, generator=gen, out=out),
        "torch rand (uniform bits only)": lambda: torch.rand(n, generator=gen, out=out),
        "torch randn in an Inductor graph (Philox)": inductor_randn,
        "numpy PCG64 standard_normal float32": lambda: rng.standard_normal(
            out=buf, dtype=np.float32
        ),
    }
    return {name: per_step_ms(fn, repeats) * 1e6 / n for name, fn in fns.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma list of {list(SIZES)}")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per timing (default: size's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.sizes.split(","):
        case = Case(name)
        steps = args.steps or max(3, case.steps // 4)
        gflop = case.chains * dln_flops_per_step(case.widths, case.batch) / 1e9
        print(
            f"\n{name}: {case.fm.num_params} params, {case.chains} chains, batch {case.batch}, "
            f"{gflop:.3g} GFLOP per step; a 2048^2 matmul runs at {matmul_gflops():.0f} GFLOP/s"
        )
        row = profile(case, steps)
        total = row["estimator"]
        parts = ", ".join(
            f"{k} {row[k]:.2f} ({100 * row[k] / total:.0f}%)"
            for k in ("fwd+bwd", "noise", "update", "gather", "other")
        )
        print(f"  estimator step {total:.2f} ms = {parts}")
        print(f"  fwd+bwd alone runs at {gflop / row['fwd+bwd'] * 1e3:.0f} GFLOP/s")
        eager, fast, compile_s = compiled_vs_eager(case, steps)
        print(
            f"  torch.compile of the step: eager {eager:.2f} ms, compiled {fast:.2f} ms "
            f"({eager / fast:.2f}x), compiled in {compile_s:.0f} s"
        )
        inline, prefetched, same = prefetch_vs_inline(case, steps)
        print(
            f"  noise on a helper thread: inline {inline:.2f} ms, prefetched {prefetched:.2f} ms "
            f"({inline / prefetched:.2f}x), chains bit-identical: {same}"
        )
    for label, case, draws in (("icl regression transformer", icl_case, 60), ("LM", lm_case, 20)):
        eager, fast, first, diff = compile_end_to_end(case, draws)
        print(
            f"\nestimate_llc, {label}, 4 chains x {draws} draws: eager {eager:.1f} s, "
            f"compile=True {fast:.1f} s ({eager / fast:.2f}x; the first call {first:.0f} s with "
            f"compiling), largest per-chain LLC difference {diff:.2g}"
        )
    print("\nns per float32 normal, 2M at a time:")
    for label, ns in rng_ns_per_number().items():
        print(f"  {label:<45} {ns:6.2f}")


if __name__ == "__main__":
    main()
