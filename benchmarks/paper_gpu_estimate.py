"""What one NVIDIA H100 would need for each paper's ``paper`` profile: an estimate on paper.

Nothing here runs a model. For every paper (both halves of icl_landscape) this reads the
``paper`` profile from ``papers/<name>/config.yaml`` and, for the stages that dominate the
cost (training and LLC sampling, and anything else large), counts

- FLOPs: a forward + backward (+ update) of a dense stack costs ~6 x parameters x examples
  (tokens for sequence models; transformers add attention's 12 x layers x T^2 x d per
  sequence); an SGLD draw costs the same as an SGD step on its minibatch, for every chain
  (and every checkpoint when chains of several checkpoints are stacked), plus 2 x P x B
  for the reading at w* when draws are paired;
- sequential steps: optimizer or sampler steps that each wait for the previous one.
  Stacked/vmapped chains, seeds and checkpoints advance in one step; a Python loop over
  seeds, checkpoints, size groups or jobs adds its steps (jobs are counted one after
  another on the one GPU).

and estimates ``H100 time = max(compute, launch)`` with ``compute = FLOPs / (util x peak)``
and ``launch = steps x kernels per step x per-kernel overhead``. ``binds`` says which term
is larger. The CPU column puts the same work at the CPU speeds this repo measured (README,
papers/llc_estimator/README.md, ../shared/PAPERS.md): ``max(FLOPs / measured GFLOP/s,
steps x CPU per-step overhead)``, so the ratio shows where a GPU pays (big matmuls) and
where it barely does (tiny models, launch-bound).

How to read it: an order-of-magnitude planning figure, not a measurement; no GPU was used.
Kernel counts per step are rough (stated per stage); the utilisation of large fp32
matmuls is an assumption. Stages marked ``cpu*`` run on the CPU in the current code (the
device is hard-coded or never passed) even on a GPU machine; their H100 column says what
they would take if moved. Left out as small: evaluations at logged steps, checkpoint I/O,
figures, analysis, the closed-form/Monte-Carlo TMS loss table, data preparation.

    .venv/bin/python benchmarks/paper_gpu_estimate.py
    .venv/bin/python benchmarks/paper_gpu_estimate.py --util 0.2 --kernel-us 5
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from sltrepro.config import load_profile
from sltrepro.models.attn_lm import AttnOnlyLM
from sltrepro.models.icl_transformer import ICLTransformer
from sltrepro.models.modular_transformer import TransformerShape, param_shapes
from sltrepro.papers.llc_at_scale.pipeline import architecture_widths

MEASURED_CPU = {
    # measured dense rates on the 2-core dev machines (GFLOP/s), and where they come from
    "dln_large": (98.0, "bench_llc 2M-param DLN estimator: 16-20 chain-steps/s x 5.5 GFLOP"),
    "dln_mid": (28.0, "bench_llc 150k DLN: 17-22% of a 112-172 GFLOP/s matmul"),
    "dln_small": (13.0, "bench_llc 5k DLN: 9-10% of a 112-172 GFLOP/s matmul"),
}


@dataclass
class Stage:
    paper: str
    name: str
    params: int  # parameters of one model
    flops: float  # total floating-point operations
    steps: int  # sequential steps
    kernels: int  # kernels (eager ops) per sequential step, rough
    cpu_gflops: float  # measured CPU rate for this kind of work
    on_cpu: bool = False  # runs on the CPU in the current code
    fp64: bool = False

    def compute_s(self, a) -> float:
        peak = a.peak_fp64 if self.fp64 else a.peak_fp32
        return self.flops / (a.util * peak * 1e12)

    def launch_s(self, a) -> float:
        return self.steps * self.kernels * a.kernel_us * 1e-6

    def h100_s(self, a) -> float:
        return max(self.compute_s(a), self.launch_s(a))

    def cpu_s(self, a) -> float:
        return max(self.flops / (self.cpu_gflops * 1e9), self.steps * a.cpu_step_ms * 1e-3)


def dln_params(widths) -> int:
    return sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def dln_step_flops(widths, batch) -> float:
    """bench_llc's count: forward 2BP, weight grads 2BP, input grads 2B(P - first layer)."""
    sizes = [a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return 2 * batch * (2 * sum(sizes) + sum(sizes[1:]))


def dln_rate(params: int) -> float:
    key = "dln_large" if params >= 500_000 else "dln_mid" if params >= 20_000 else "dln_small"
    return MEASURED_CPU[key][0]


def sampler_steps(block) -> int:
    return block.get("num_burnin", 0) + block["num_draws"]


# --------------------------------------------------------------------------- papers
def llc_estimator(cfg, a) -> list[Stage]:
    """Lau et al.: tiny models, full batch (n = 1000); one estimate_llc per seed, in a loop."""
    p, n, s = "llc_estimator", cfg["num_samples"], cfg["sampler"]
    steps, chains, rate = sampler_steps(s), s["num_chains"], MEASURED_CPU["dln_small"][0]
    out = []
    k = len(cfg["models"])  # y = p(w) x, 2 parameters: ~10 flops per example per chain
    out.append(
        Stage(
            p,
            f"normal crossings ({k} models x {cfg['seeds']} seeds)",
            2,
            k * cfg["seeds"] * steps * chains * n * 30.0,
            k * cfg["seeds"] * steps,
            40,
            rate,
        )
    )
    for case in cfg["dln_cases"]:
        w = case["widths"]
        out.append(
            Stage(
                p,
                f"DLN {w} ({cfg['seeds']} seeds)",
                dln_params(w),
                cfg["seeds"] * steps * chains * dln_step_flops(w, n),
                cfg["seeds"] * steps,
                3 * (len(w) - 1) + 40,
                rate,
            )
        )
    cal = cfg["calibration"]
    w = next(c["widths"] for c in cfg["dln_cases"] if c["name"] == cal["case"])
    runs = len(cal["step_sizes"]) * len(cal["nbeta_factors"])
    cal_steps = runs * (cal["num_burnin"] + cal["num_draws"])
    out.append(
        Stage(
            p,
            f"calibration sweep ({runs} runs)",
            dln_params(w),
            cal_steps * cal["num_chains"] * dln_step_flops(w, n),
            cal_steps,
            3 * (len(w) - 1) + 60,
            rate,
        )
    )  # MALA every step: ~20 more ops
    mr = cfg["mala_reference"]
    w = next(c["widths"] for c in cfg["dln_cases"] if c["name"] == mr["cases"][0])
    mr_steps = len(mr["cases"]) * (mr["num_steps"] + mr["num_burnin"])
    # sufficient statistics: per chain and seed a few (in x in) products, ~1e4 flops
    out.append(
        Stage(
            p,
            "MALA reference (float64, seeds x chains stacked)",
            dln_params(w),
            mr_steps * cfg["seeds"] * mr["num_chains"] * 1e4,
            mr_steps,
            60,
            rate,
            on_cpu=True,
            fp64=True,
        )
    )
    return out


def llc_at_scale(cfg, a) -> list[Stage]:
    """Furman & Lau: one job per random DLN (widths re-drawn here exactly as the pipeline
    draws them); per net 3 one-chain SGLD runs (at w* on minibatches, at w* on the exact
    H_1-row batch, at the SGD endpoint) and one SGD run; every step sequential."""
    p, batch, out = "llc_at_scale", cfg["llc"]["batch_size"], []
    index = 0
    for fam in cfg["families"]:
        flops = steps = kern = 0.0
        biggest = 0
        for _ in range(fam["count"]):
            w = architecture_widths(cfg, index)
            index += 1
            P, L, c = dln_params(w), len(w) - 1, fam["num_chains"]
            biggest = max(biggest, P)
            sgld = fam["num_steps"] * c * (2 * dln_step_flops(w, batch) + dln_step_flops(w, w[0]))
            sgd = fam["sgd_steps"] * (dln_step_flops(w, cfg["sgd"]["batch_size"]) + 4 * P)
            evals = 3 * 2 * P * fam["num_samples"]  # L_n(w*) twice, the SGD endpoint's loss
            flops += sgld + sgd + evals
            steps += 3 * fam["num_steps"] + fam["sgd_steps"]
            kern += 3 * fam["num_steps"] * (3 * L + 40) + fam["sgd_steps"] * (3 * L + 20)
        out.append(
            Stage(
                p,
                f"{fam['name']} x{fam['count']} (SGLD 3 runs + SGD)",
                biggest,
                flops,
                int(steps),
                round(kern / steps),
                dln_rate(biggest),
            )
        )
    r = cfg["rescaling"]
    P = r["widths"][0] * r["widths"][1] + r["widths"][1] + r["widths"][1] * r["widths"][2]
    P += r["widths"][2]
    rows = len(r["alphas"]) * r["num_chains"]
    out.append(
        Stage(
            p,
            "ReLU rescaling (alphas stacked)",
            P,
            r["num_steps"] * rows * 6 * P * batch,
            r["num_steps"],
            40 + len(r["alphas"]),
            MEASURED_CPU["dln_small"][0],
        )
    )
    return out


def saddle_to_saddle(cfg, a) -> list[Stage]:
    """Jacot et al.: gradient descent on the whitened population loss (float64), a step
    ~6 x P x d flops per run (d = in/out width, prefix/suffix products); runs of one sweep
    are stacked. Only the depth sweep is given the device; the rest runs on the CPU."""
    p, d, seeds, out = "saddle_to_saddle", len(cfg["target_diag"]), cfg["num_seeds"], []
    small = MEASURED_CPU["dln_small"][0]
    for spec in cfg["depths"]:
        w = [d] + [spec["width"]] * (spec["depth"] - 1) + [d]
        runs, L = seeds * len(spec["gammas"]), len(w) - 1
        out.append(
            Stage(
                p,
                f"train L={spec['depth']} ({runs} runs stacked)",
                dln_params(w),
                (spec["num_steps"] + 1) * runs * 6 * dln_params(w) * d,
                spec["num_steps"] + 1,
                4 * L + 6,
                small,
                fp64=True,
            )
        )
    llc = cfg["llc"]
    dim = llc["dim"]
    for arch, spec in llc["architectures"].items():
        w, L = spec["widths"], len(spec["widths"]) - 1
        out.append(
            Stage(
                p,
                f"llc {arch}: train 1 run",
                dln_params(w),
                (llc["num_steps"] + 1) * 6 * dln_params(w) * dim,
                llc["num_steps"] + 1,
                4 * L + 6,
                small,
                on_cpu=True,
                fp64=True,
            )
        )
        # checkpoints: num_checkpoints spread + plateau middles (at most rank + 1 plateaus)
        k = llc["num_checkpoints"] + len(llc["target_singular_values"]) + 1
        rows, b = k * llc["num_chains"], llc["batch_size"]
        per = dln_step_flops(w, b) + 2 * dln_params(w) * b  # paired reading at w*
        out.append(
            Stage(
                p,
                f"llc {arch}: SGLD {k} ckpts x {llc['num_chains']} chains",
                dln_params(w),
                sampler_steps(llc) * rows * per,
                sampler_steps(llc),
                3 * L + 40 + 2 * k,
                small,
                on_cpu=True,
            )
        )
    st = cfg["structure"]
    w = st["widths"]
    for kind in ("small_init", "large_init"):
        n = st[kind]["num_steps"] + 1
        out.append(
            Stage(
                p,
                f"structure {kind} ({seeds} runs)",
                dln_params(w),
                n * seeds * 6 * dln_params(w) * w[0],
                n,
                4 * (len(w) - 1) + 6,
                small,
                on_cpu=True,
                fp64=True,
            )
        )
    ws = cfg["width_sweep"]
    for regime in ("ntk", "saddle"):
        n = ws[regime]["num_steps"] + 1
        nets = [[d] + [h] * (ws["depth"] - 1) + [d] for h in ws["widths"]]
        out.append(
            Stage(
                p,
                f"width sweep {regime} ({len(nets)} widths in a loop)",
                max(map(dln_params, nets)),
                sum(n * seeds * 6 * dln_params(w) * d for w in nets),
                n * len(nets),
                4 * ws["depth"] + 6,
                small,
                on_cpu=True,
                fp64=True,
            )
        )
    n = round(cfg["saxe"]["time"] / cfg["saxe"]["lr"]) + 1
    out.append(
        Stage(
            p,
            "Saxe check (1 run)",
            2 * d * d,
            n * 6 * 2 * d * d * d,
            n,
            14,
            small,
            on_cpu=True,
            fp64=True,
        )
    )
    return out


def modular_example_macs(s: TransformerShape) -> tuple[int, int]:
    """(multiply-adds per example, per step per model) of last_logits: the output
    projection, MLP and unembedding per example; the Q/K/V tables on the vocabulary."""
    hd = s.n_heads * s.d_head
    per_example = hd * s.d_model + 2 * s.d_model * s.d_mlp + s.d_model * s.p
    tables = 7 * s.vocab * s.d_model * hd  # Q at the last position, K and V at all 3
    return per_example, tables


def grokking_efficiency(cfg, a) -> list[Stage]:
    """Varma et al.: full-batch AdamW on stacks of the 1-layer transformer, each stack
    padded to its largest D (size groups of ratio 2, run one after another)."""
    from sltrepro.papers.grokking_efficiency.pipeline import size_buckets
    from sltrepro.train.modular import log_spaced_steps

    p, pairs, out = "grokking_efficiency", cfg["p"] ** 2, []
    s = TransformerShape(cfg["p"], **cfg["model"])
    P = sum(torch.Size(v).numel() for v in param_shapes(s).values())
    ex, tab = modular_example_macs(s)
    # measured: a full-batch step on 3,830 pairs at p = 113 took ~95 ms on 2 cores
    rate = (3830 * 6 * ex + 6 * tab) / 0.095 / 1e9
    kern = 170  # vmapped fwd ~25, bwd ~50, AdamW as per-tensor ops on 11 tensors ~90

    def stack(name, sizes, steps, models_per_size=1):
        groups = size_buckets(sizes)
        flops = sum(
            (steps + 1) * len(g) * models_per_size * (6 * ex * max(sizes[i] for i in g) + 6 * tab)
            for g in groups
        )
        return Stage(
            p,
            f"{name} ({len(sizes) * models_per_size} nets, {len(groups)} stacks)",
            P,
            flops,
            (steps + 1) * len(groups),
            kern,
            rate,
        )

    g = cfg["grok"]
    out.append(stack("grok", [round(g["train_fraction"] * pairs)], g["steps"]))
    llc, k = cfg["llc"], len(log_spaced_steps(g["steps"], g["llc_checkpoints"]))
    rows = k * llc["num_chains"]
    out.append(
        Stage(
            p,
            f"llc ({k} ckpts x {llc['num_chains']} chains stacked)",
            P,
            sampler_steps(llc) * rows * (6 * ex * llc["batch_size"] + 6 * tab),
            sampler_steps(llc),
            120 + k,
            rate,
        )
    )
    u, e = cfg["ungrok"], cfg["efficiency"]
    pre = max(u["seeds"], e["seeds"])
    out.append(stack("pretrain", [u["pretrain_size"]] * pre, u["pretrain_steps"]))
    sizes = [d for d in e["memorise_sizes"] for _ in range(e["seeds"])]
    out.append(stack("memorise", sizes, e["steps"]))
    sizes = [d for d in e["generalise_sizes"] for _ in range(e["seeds"])]
    out.append(stack("generalise", sizes, e["generalise_steps"]))
    sizes = [d for d in u["sizes"] for _ in range(u["seeds"])]
    for wd in u["weight_decays"]:
        out.append(stack(f"ungrok wd={wd:g}", sizes, max(1, round(u["decay_budget"] / wd))))
    sg = cfg["semigrok"]
    sizes = [d for d in sg["sizes"] for _ in range(sg["seeds"])]
    # one stack over all sizes (semigrok does not bucket): pad to the largest
    out.append(
        Stage(
            p,
            f"semigrok ({len(sizes)} nets, 1 stack)",
            P,
            (sg["steps"] + 1) * len(sizes) * (6 * ex * max(sizes) + 6 * tab),
            sg["steps"] + 1,
            kern,
            rate,
        )
    )
    return out


def transformer_flops(params: int, tokens_per_seq: int, layers: int, d: int) -> float:
    """fwd+bwd flops of one sequence: 6 P T + attention's 12 L T^2 d (scores and mixing)."""
    return 6 * params * tokens_per_seq + 12 * layers * tokens_per_seq**2 * d


def icl_regression(cfg, a) -> list[Stage]:
    """Hoogland et al., linear regression: one training job per seed (500k Adam steps); LLC
    jobs per (seed, block): the block's checkpoints x chains stacked, and with per-token
    posteriors one stacked run per token position, one after another."""
    from sltrepro.papers.icl_landscape.pipeline import block_steps, is_replicate

    p, r = "icl_landscape/regression", cfg["regression"]
    with torch.device("meta"):
        model = ICLTransformer()
    P = sum(t.numel() for t in model.parameters())
    T, L, d = 2 * model.num_examples, len(model.blocks), model.pos.shape[1]
    seq = transformer_flops(P, T, L, d)
    rate = 256 * seq / 0.068 / 1e9  # measured: ~68 ms per batch-256 step on 2 cores
    seeds = len(r["seeds"])
    out = [
        Stage(
            p,
            f"train ({seeds} seeds, one job each)",
            P,
            seeds * r["steps"] * r["batch_size"] * seq,
            seeds * r["steps"],
            200,
            rate,
        )
    ]
    llc = r["llc"]
    tokens = model.num_examples if llc["per_token_posteriors"] else 1
    flops = steps = 0
    jobs = 0
    for seed in r["seeds"]:
        for block in range(llc["blocks"]):
            k = len(block_steps(r, block, replicate=is_replicate(r, seed)))
            rows = k * llc["num_chains"]
            flops += tokens * sampler_steps(llc) * rows * llc["batch_size"] * seq
            steps += tokens * sampler_steps(llc)
            jobs += 1
    out.append(
        Stage(
            p,
            f"llc ({jobs} jobs, ~{k} ckpts x {llc['num_chains']} chains, "
            f"{tokens} token posteriors)",
            P,
            flops,
            steps,
            180,
            rate,
        )
    )
    return out


def icl_language(cfg, a) -> list[Stage]:
    """Hoogland et al., language model: 50k AdamW steps per seed; one estimate_llc per
    checkpoint and seed (chains stacked), and per head of the reference seed one restricted
    estimate per checkpoint, in loops."""
    from sltrepro.papers.icl_landscape.lm_pipeline import checkpoint_steps

    p, lm = "icl_landscape/language", cfg["language"]

    def lm_shape(c):
        with torch.device("meta"):
            model = AttnOnlyLM(
                c["vocab_size"],
                d_model=c["d_model"],
                n_heads=c["n_heads"],
                d_head=c["d_head"],
                context=c["context"],
                n_layers=c["n_layers"],
            )
        total = sum(t.numel() for t in model.parameters())
        lookup = model.embed.weight.numel() + model.pos.numel()  # gathers, not matmuls
        return total, total - lookup

    P, dense = lm_shape(lm)
    T, L, d = lm["context"], lm["n_layers"], lm["d_model"]
    seq = transformer_flops(dense, T, L, d)
    # measured: the cpu-profile LM (d 64, ctx 128, vocab 512, batch 16) at ~27 steps/s
    cl = load_profile("icl_landscape", "cpu")["language"]
    rate = (
        27
        * cl["batch_size"]
        * transformer_flops(lm_shape(cl)[1], cl["context"], cl["n_layers"], cl["d_model"])
        / 1e9
    )
    runs = len(lm["seeds"])  # one job per seed, one after another on one GPU
    out = [
        Stage(
            p,
            f"train ({runs} seeds, one by one)",
            P,
            runs * lm["steps"] * lm["batch_size"] * seq,
            runs * lm["steps"],
            120,
            rate,
        )
    ]
    n_ckpt = len(checkpoint_steps(lm))
    llc = lm["llc"]
    rows = llc["num_chains"] * llc["batch_size"]
    out.append(
        Stage(
            p,
            f"llc ({runs} seeds x {n_ckpt} ckpts one by one, {llc['num_chains']} chains)",
            P,
            runs * n_ckpt * sampler_steps(llc) * rows * seq,
            runs * n_ckpt * sampler_steps(llc),
            120,
            rate,
        )
    )
    h = lm["head_llc"]
    heads = lm["n_layers"] * lm["n_heads"]
    k = len(checkpoint_steps(lm)[:: h["checkpoint_every"]])
    # restricted to one head: forward 2PT + activation gradients ~2PT (+ attention)
    head_seq = 4 * dense * T + 12 * L * T**2 * d
    runs = heads * k + heads  # every head at every picked checkpoint + the plain-text pass
    out.append(
        Stage(
            p,
            f"head llc ({heads} heads x {k} ckpts + plain text, one by one)",
            P,
            runs * sampler_steps(h) * h["num_chains"] * h["batch_size"] * head_seq,
            runs * sampler_steps(h),
            130,
            rate,
        )
    )
    return out


def tms_phase_transitions(cfg, a) -> list[Stage]:
    """Chen et al.: an 18-parameter autoencoder; every stage runs on the CPU in the code."""
    p, c, r = "tms_phase_transitions", cfg["c"], 2
    P, fl = c * r + c, 6 * (c * r + c) * 2  # fwd+bwd per example (W then W^T)
    out, rate = [], MEASURED_CPU["dln_small"][0]
    llc = cfg["llc"]
    jobs = len(llc["points"]) * llc["num_seeds"]
    steps = jobs * (llc["refine"]["steps"] + sampler_steps(llc))
    out.append(
        Stage(
            p,
            f"llc at k-gons ({jobs} seeds x points, one by one)",
            P,
            jobs * sampler_steps(llc) * llc["num_chains"] * llc["n_samples"] * fl,
            steps,
            40,
            rate,
            on_cpu=True,
        )
    )
    b = cfg["bayes"]
    n_sum, n_jobs = sum(b["sample_sizes"]), len(b["sample_sizes"])
    out.append(
        Stage(
            p,
            f"Bayes MALA ({n_jobs} n x {b['num_chains']} chains)",
            P,
            (b["num_burnin"] + b["num_draws"]) * b["num_chains"] * n_sum * 2 * fl,
            n_jobs * (b["num_burnin"] + b["num_draws"]),
            60,
            rate,
            on_cpu=True,
            fp64=True,
        )
    )
    s = cfg["sgd"]
    out.append(
        Stage(
            p,
            f"SGD ({s['num_seeds']} runs stacked)",
            P,
            s["num_steps"] * s["num_seeds"] * s["batch_size"] * fl,
            s["num_steps"],
            30,
            rate,
            on_cpu=True,
        )
    )
    k = 3  # assumption: plateaus per chosen trajectory (2-4 seen in cpu runs)
    out.append(
        Stage(
            p,
            f"SGD-plateau llc ({s['llc_seeds']} runs x ~{k} plateaus)",
            P,
            s["llc_seeds"] * sampler_steps(llc) * k * llc["num_chains"] * s["n_samples"] * fl,
            s["llc_seeds"] * sampler_steps(llc),
            40 + k,
            rate,
            on_cpu=True,
        )
    )
    return out


PAPERS = {
    "llc_estimator": llc_estimator,
    "llc_at_scale": llc_at_scale,
    "saddle_to_saddle": saddle_to_saddle,
    "grokking_efficiency": grokking_efficiency,
    "icl_landscape/regression": icl_regression,
    "icl_landscape/language": icl_language,
    "tms_phase_transitions": tms_phase_transitions,
}


# --------------------------------------------------------------------------- report
def hours(s: float) -> str:
    h = s / 3600
    return f"{h:.3g}" if h >= 0.01 else f"{h:.1e}"


def report(a) -> None:
    print(__doc__.split("\n\n")[0])
    print("Assumptions (options):")
    print(f"  --peak-fp32 {a.peak_fp32} TFLOP/s (H100 SXM, no tensor cores; torch keeps TF32 off)")
    print(f"  --peak-fp64 {a.peak_fp64} TFLOP/s (H100 SXM FP64 without tensor cores)")
    print(f"  --util {a.util} (share of peak reached by the large matmuls)")
    print(f"  --kernel-us {a.kernel_us} us per eager op (dispatch + launch; 30 ops = 0.3 ms)")
    print(f"  --cpu-step-ms {a.cpu_step_ms} ms CPU floor per sequential step")
    for key, (rate, src) in MEASURED_CPU.items():
        print(f"  CPU {key}: {rate} GFLOP/s ({src})")
    print("  CPU transformers: from measured step times (grokking 95 ms at p=113, D=3830; ICL")
    print("  regression 68 ms at batch 256; cpu-profile LM ~27 steps/s), see the stage code.")
    print()
    head = (
        "paper / stage",
        "params",
        "FLOPs",
        "seq steps",
        "k/st",
        "H100 comp h",
        "H100 launch h",
        "H100 h",
        "binds",
        "CPU h",
        "CPU/H100",
    )
    rows, totals = [], []
    for name, fn in PAPERS.items():
        paper = name.split("/")[0]
        cfg = load_profile(paper, "paper")
        stages = fn(cfg, a)
        gpu = cpu = mixed = flops = 0.0
        for s in stages:
            g, c = s.h100_s(a), s.cpu_s(a)
            gpu, cpu, flops = gpu + g, cpu + c, flops + s.flops
            mixed += c if s.on_cpu else g
            binds = "compute" if s.compute_s(a) >= s.launch_s(a) else "launch"
            where = " cpu*" if s.on_cpu else ""
            rows.append(
                (
                    f"{name}: {s.name}{where}",
                    f"{s.params:.3g}",
                    f"{s.flops:.2e}",
                    f"{s.steps:.3g}",
                    str(s.kernels),
                    hours(s.compute_s(a)),
                    hours(s.launch_s(a)),
                    hours(g),
                    binds,
                    hours(c),
                    f"{c / g:.2g}",
                )
            )
        rows.append(
            (
                f"**{name} total**",
                "",
                f"{flops:.2e}",
                "",
                "",
                "",
                "",
                hours(gpu),
                "",
                hours(cpu),
                f"{cpu / gpu:.2g}",
            )
        )
        totals.append((name, gpu, mixed, cpu))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    print("Per paper (hours): all stages on the H100 | as the code stands (cpu* stages at the")
    print("CPU estimate, the rest on the H100) | everything on the 2-core CPU")
    for name, gpu, mixed, cpu in totals:
        print(f"  {name:28s} {hours(gpu):>8s} | {hours(mixed):>8s} | {hours(cpu):>8s}")
    g = sum(t[1] for t in totals)
    m = sum(t[2] for t in totals)
    c = sum(t[3] for t in totals)
    print(f"  {'all papers':28s} {hours(g):>8s} | {hours(m):>8s} | {hours(c):>8s}")


def calibration(a) -> None:
    """The same counting on the cpu profile of the two papers whose idle cpu DAG wall time
    PAPERS.md records: does steps x cpu-step-ms land near the measured time?"""
    print()
    print("Check of the CPU floor: the same counts on the cpu profile against the measured idle")
    print("cpu DAG wall times (PAPERS.md, Intel kind, 2 cores, `-c2`):")
    for paper, measured in (("llc_estimator", 169), ("saddle_to_saddle", 96)):
        stages = PAPERS[paper](load_profile(paper, "cpu"), a)
        steps = sum(s.steps for s in stages)
        print(
            f"  {paper}: {steps:,} sequential steps, measured {measured} s on 2 cores ="
            f" {2 * measured / steps * 1e3:.2f} ms per step per core"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--peak-fp32", type=float, default=67.0, help="TFLOP/s, H100 SXM FP32")
    ap.add_argument("--peak-fp64", type=float, default=34.0, help="TFLOP/s, H100 SXM FP64")
    ap.add_argument("--util", type=float, default=0.4, help="fraction of peak for big matmuls")
    ap.add_argument(
        "--kernel-us",
        type=float,
        default=10.0,
        help="microseconds of CPU-side overhead per eager op (launch-bound steps)",
    )
    ap.add_argument(
        "--cpu-step-ms",
        type=float,
        default=1.0,
        help="CPU floor per sequential step of a tiny model (2-core dev machine)",
    )
    a = ap.parse_args()
    report(a)
    calibration(a)


if __name__ == "__main__":
    main()
