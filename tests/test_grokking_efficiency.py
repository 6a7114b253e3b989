"""Modular arithmetic data, the one-layer transformer's fast path, training, and the analysis."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from sltrepro.models.modular_transformer import (
    ModularTransformer,
    TransformerShape,
    full_logits,
    init_params,
    last_logits,
    param_norm,
    select,
    stacked_logits,
)
from sltrepro.papers.grokking_efficiency import pipeline
from sltrepro.papers.grokking_efficiency.pipeline import (
    critical_size,
    crossover_metrics,
    delay_factor,
    efficiency_metrics,
    fourier_shares,
    longest_plateau,
    settled_by_model,
    size_buckets,
    ungrok_metrics,
)
from sltrepro.tasks.modular import (
    all_pairs,
    make_batch,
    random_labels,
    split_indices,
    subset_indices,
)
from sltrepro.train.modular import AdamWSettings, adamw_step, log_spaced_steps, train

SMALL = TransformerShape(p=7, d_model=16, n_heads=2, d_head=8, d_mlp=32)


@pytest.mark.parametrize("operation", ["add", "sub", "mul"])
def test_all_pairs_has_every_pair_once_with_right_labels(operation):
    p = 11
    tokens, labels = all_pairs(p, operation)
    assert tokens.shape == (p * p, 3) and labels.shape == (p * p,)
    pairs = {(int(a), int(b)) for a, b, _ in tokens}
    assert pairs == {(a, b) for a in range(p) for b in range(p)}
    assert (tokens[:, 2] == p).all()
    expected = {"add": lambda a, b: (a + b) % p, "sub": lambda a, b: (a - b) % p}
    expected["mul"] = lambda a, b: (a * b) % p
    for (a, b, _), y in zip(tokens.tolist(), labels.tolist(), strict=True):
        assert y == expected[operation](a, b)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown operation"):
        all_pairs(5, "div")
    with pytest.raises(ValueError, match="D <="):
        split_indices(25, 26, 0)


def test_splits_are_disjoint_complete_seeded_and_nested():
    train, test = split_indices(100, 30, seed=3)
    assert len(train) == 30 and len(test) == 70
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(100))
    again, _ = split_indices(100, 30, seed=3)
    other, _ = split_indices(100, 30, seed=4)
    assert torch.equal(train, again) and not torch.equal(train, other)
    bigger, _ = split_indices(100, 50, seed=3)
    assert set(train.tolist()) <= set(bigger.tolist())
    sub = subset_indices(train, 10, seed=0)
    assert len(sub) == 10 and set(sub.tolist()) <= set(train.tolist())


def test_random_labels_are_seeded_and_in_range():
    a, b = random_labels(13, 0), random_labels(13, 0)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() < 13
    assert not torch.equal(a, random_labels(13, 1))


def test_make_batch_pads_with_zero_weight():
    tokens, labels = all_pairs(5)
    idx = [torch.tensor([0, 3, 7]), torch.tensor([1, 2, 4, 8, 9])]
    batch = make_batch(tokens, [labels, labels], idx)
    assert batch.train_tokens.shape == (2, 5, 3)
    assert torch.allclose(batch.train_weight.sum(1), torch.ones(2))
    assert batch.train_weight[0, 3:].eq(0).all()
    assert batch.train_mask.sum(1).tolist() == [3, 5]
    assert torch.equal(batch.train_labels[1], labels[idx[1]])


def test_last_position_path_equals_full_model():
    params = init_params(SMALL, 1, seeds=0)
    one = select(params, 0)
    # larger random weights, so attention is far from uniform; float64, so that the
    # comparison tests the algebra rather than float32 rounding of large logits
    one = {k: (v * 3 + torch.randn_like(v)).double() for k, v in one.items()}
    tokens, _ = all_pairs(SMALL.p)
    torch.testing.assert_close(
        last_logits(one, tokens), full_logits(one, tokens), rtol=1e-12, atol=1e-10
    )


def test_stacked_logits_match_each_model_and_module():
    params = init_params(SMALL, 3, seeds=[0, 1, 2])
    tokens, _ = all_pairs(SMALL.p)
    stacked = stacked_logits(params, tokens)
    for m in range(3):
        torch.testing.assert_close(stacked[m], last_logits(select(params, m), tokens))
    module = ModularTransformer(select(params, 1))
    torch.testing.assert_close(module(tokens), stacked[1])
    assert param_norm(params).shape == (3,)


def test_adamw_step_matches_torch_adamw():
    torch.manual_seed(0)
    w = torch.randn(2, 4, 3)
    grads = [torch.randn(2, 4, 3) for _ in range(3)]
    settings = AdamWSettings(lr=1e-2, warmup_steps=1)
    ours = {"w": w.clone()}
    state = {"m": {"w": torch.zeros_like(w)}, "v": {"w": torch.zeros_like(w)}}
    ref = w.clone().requires_grad_(True)
    opt = torch.optim.AdamW([ref], lr=1e-2, betas=(0.9, 0.98), weight_decay=0.5, eps=1e-8)
    for t, g in enumerate(grads, start=1):
        adamw_step(ours, {"w": g}, state, t, settings, torch.tensor([0.5, 0.5]))
        ref.grad = g.clone()
        opt.step()
    torch.testing.assert_close(ours["w"], ref.detach())


def test_stacked_training_equals_one_at_a_time_and_resumes(tmp_path):
    tokens, labels = all_pairs(SMALL.p)
    idx = [split_indices(SMALL.p**2, d, seed=s)[0] for d, s in ((20, 0), (30, 1))]
    params = init_params(SMALL, 2, seeds=[5, 6])
    wd = [1.0, 0.3]
    both, hist, snaps = train(
        params,
        make_batch(tokens, [labels] * 2, idx),
        steps=30,
        weight_decay=wd,
        log_steps=[0, 30],
        snapshot_steps=[10],
        desc="t",
    )
    assert sorted(snaps) == [10] and set(hist.step) == {0, 30}
    for m in range(2):
        alone, _, _ = train(
            {k: v[m : m + 1] for k, v in params.items()},
            make_batch(tokens, [labels], [idx[m]]),
            steps=30,
            weight_decay=wd[m],
            log_steps=[30],
            desc="t",
        )
        for k in params:
            torch.testing.assert_close(alone[k][0], both[k][m], rtol=1e-4, atol=1e-5)
    # an interrupted run (checkpoint at step 20 of 30) resumes to the same end point
    path = tmp_path / "ckpt.pt"
    batch = make_batch(tokens, [labels] * 2, idx)
    common = dict(weight_decay=wd, checkpoint_path=path, checkpoint_every=20, desc="t")
    train(params, batch, steps=20, log_steps=[0], **common)
    resumed, _, _ = train(params, batch, steps=30, log_steps=[30], **common)
    for k in params:
        torch.testing.assert_close(resumed[k], both[k])


def test_training_memorises_a_small_table():
    tokens, labels = all_pairs(SMALL.p)
    idx = [split_indices(SMALL.p**2, 25, seed=0)[0]]
    _, hist, _ = train(
        init_params(SMALL, 1, seeds=0),
        make_batch(tokens, [labels], idx),
        steps=300,
        weight_decay=0.0,
        settings=AdamWSettings(lr=1e-2),
        log_steps=[0, 300],
        desc="t",
    )
    first, last = hist.iloc[0], hist.iloc[-1]
    assert last.train_loss < 0.1 * first.train_loss and last.train_acc == 1.0


def test_llc_snapshot_groups_give_the_numbers_of_one_stack():
    """llc.max_stacked_checkpoints changes only how many snapshots' chains share a stack:
    with 4 chains (rows agree mod 4, the MKL batched-matmul rounding) the traces are those
    of all snapshots in one stack, bit for bit."""
    config = {
        "p": SMALL.p,
        "operation": "add",
        "seed": 0,
        "model": {"d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
        "llc": {"num_chains": 4, "num_draws": 6, "num_burnin": 2, "step_size": 1e-4,
                "localization": 100.0, "batch_size": 16},
    }  # fmt: skip
    stack = init_params(SMALL, 3, [0, 1, 2])
    saved = {
        "train_indices": torch.arange(30),
        "snapshots": {step: select(stack, k) for k, step in enumerate([0, 10, 100])},
    }
    runs = {}
    for group in (None, 1, 2):
        config["llc"]["max_stacked_checkpoints"] = group
        with pytest.warns(RuntimeWarning):  # 6 draws are not a healthy estimate
            runs[group] = pipeline.llc(config, saved, "cpu", log=logging.getLogger(__name__))
    config["llc"]["max_stacked_checkpoints"] = 0  # the setting reaches the estimator
    with pytest.raises(ValueError, match="max_stacked_checkpoints"):
        pipeline.llc(config, saved, "cpu", log=logging.getLogger(__name__))
    for group in (1, 2):
        np.testing.assert_array_equal(runs[group][1], runs[None][1])
        pd.testing.assert_frame_equal(
            runs[group][0], runs[None][0].assign(seconds=runs[group][0]["seconds"])
        )


def test_log_spaced_steps():
    steps = log_spaced_steps(10_000, 20)
    assert steps[0] == 0 and steps[-1] == 10_000 and steps == sorted(set(steps))
    assert 15 <= len(steps) <= 20


def test_delay_factor_and_critical_size():
    hist = pd.DataFrame(
        {
            "step": [0, 10, 100, 1000],
            "train_acc": [0.0, 1.0, 1.0, 1.0],
            "test_acc": [0.0, 0.1, 0.5, 0.99],
        }
    )
    assert delay_factor(hist, 0.95) == pytest.approx(100.0)
    sizes = np.array([100, 200, 400, 800])
    assert critical_size(sizes, np.array([0.0, 0.2, 0.8, 1.0])) == pytest.approx(
        np.exp((np.log(200) + np.log(400)) / 2)
    )
    assert critical_size(sizes, np.array([0.0, 0.1, 0.2, 0.3])) is None
    assert critical_size(sizes, np.array([0.0, 0.1, 0.2, 0.3]), bounded=True) == 800
    assert critical_size(sizes, np.array([0.6, 0.7, 0.8, 0.9]), bounded=True) == 100


def _ungrok_finals(dcrit_by_wd: dict, equal_steps_dcrit_by_wd: dict, sizes) -> pd.DataFrame:
    """Final test accuracies of logistic curves in log D' centred on the given D_crit per
    (wd, seed); the equal-steps column centred on its own D_crit."""

    def acc(d, crit):
        return float(1 / (1 + (crit / d) ** 4))

    rows = []
    for wd, crits in dcrit_by_wd.items():
        for seed, crit in enumerate(crits):
            for d in sizes:
                rows.append(
                    {
                        "weight_decay": wd,
                        "size": d,
                        "seed": seed,
                        "train_acc": 1.0,
                        "test_acc": acc(d, crit),
                        "test_acc_equal_steps": acc(d, equal_steps_dcrit_by_wd[wd][seed]),
                        "test_acc_settled": True,
                    }
                )
    return pd.DataFrame(rows)


def test_ungrok_metrics_slope_against_weight_decay_and_its_budget_null():
    sizes = [50, 100, 200, 400, 800]
    flat = {0.3: (190, 210), 1.0: (200, 205), 3.0: (195, 215)}
    budget = {0.3: (90, 100), 1.0: (200, 205), 3.0: (390, 420)}  # D_crit ~ wd^0.6
    out = ungrok_metrics(_ungrok_finals(flat, budget, sizes), sizes)
    assert out["ungrok_dcrit"] == out["ungrok_dcrit_wd1"]
    assert 190 < out["ungrok_dcrit_wd1"] < 215
    assert abs(out["ungrok_dcrit_wd_slope_z"]) < 2  # flat: consistent with 0
    assert out["ungrok_dcrit_wd_slope_equal_steps"] == pytest.approx(0.6, abs=0.05)
    assert out["ungrok_dcrit_wd_slope_equal_steps_z"] > 2  # the null lies outside the band
    assert out["ungrok_converged"] is True
    assert out["ungrok_test_acc_smallest_max"] < 0.1 and out["ungrok_test_acc_largest_min"] > 0.9
    # the lowest wd has not ungrokked at any D' after the shortest run's steps: its
    # equal-steps D_crit lies below the grid, clipped to it, and the null is still far out
    below = {0.3: (20, 25), 1.0: (200, 205), 3.0: (390, 420)}
    out = ungrok_metrics(_ungrok_finals(flat, below, sizes), sizes)
    assert out["ungrok_dcrit_wd_slope_equal_steps_z"] > 2
    # a real dependence on wd is caught, and an unsettled run is reported
    finals = _ungrok_finals(budget, budget, sizes)
    finals.loc[0, "test_acc_settled"] = False
    out = ungrok_metrics(finals, sizes)
    assert out["ungrok_dcrit_wd_slope_z"] > 2 and out["ungrok_converged"] is False


def test_longest_plateau():
    hist = pd.DataFrame({"step": [0, 10, 100, 1000, 5000], "test_acc": [0, 0.5, 0.6, 0.95, 0.5]})
    assert longest_plateau(hist, 0.2, 0.9) == 90.0


def test_fourier_shares_find_the_trigonometric_circuit():
    p = 13
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    trig = sum(
        amp * np.cos(2 * np.pi * k * (a + b - c) / p + phase)
        for k, amp, phase in ((2, 1.0, 0.3), (5, 0.6, 1.1), (6, 0.3, 2.0))
    )
    key, diagonal = fourier_shares(torch.tensor(trig + 7.0 * (a == 0)), keys=3)
    # the per-(a, b) shift (7 at a = 0) is removed by centring over c
    assert key == pytest.approx(1.0, abs=1e-9) and diagonal == pytest.approx(1.0, abs=1e-9)
    assert fourier_shares(torch.tensor(trig), keys=1)[0] == pytest.approx(1 / 1.45, rel=1e-6)
    noise = torch.randn(p, p, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    key, diagonal = fourier_shares(noise, keys=3)
    assert key < 0.05 and diagonal < 0.1  # (p - 1) / 2 of ~p^3 / 2 components


def test_settled_by_model():
    history = pd.DataFrame(
        {
            "step": [0, 0, 80, 80, 100, 100],
            "model": [0, 1] * 3,
            "param_norm": [30.0, 30.0, 25.1, 28.0, 25.0, 25.0],
        }
    )
    settled = settled_by_model(history, "param_norm", relative=0.01)
    assert settled.tolist() == [True, False]
    assert settled_by_model(history, "param_norm", absolute=5).tolist() == [True, True]


def _sweep(kind: str, sizes, norm_of_d, seeds=3, noise=0.01, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "kind": kind,
            "size": d,
            "seed": s,
            "param_norm": norm_of_d(d) * np.exp(noise * rng.standard_normal()),
            "train_acc": 1.0,
            "test_acc": 1.0 if kind == "generalise" else 0.02,
            "fourier_key_share": 0.97 if kind == "generalise" else 0.01,
            "fourier_diagonal_share": 0.98 if kind == "generalise" else 0.03,
            "logit_margin": 12.0,
            "unembed_norm": 4.0,
            "norm_settled": True,
        }
        for d in sizes
        for s in range(seeds)
    ]
    return pd.DataFrame(rows)


def test_efficiency_and_crossover_metrics():
    mem = _sweep("memorise", [100, 200, 400, 800], lambda d: 10 * (d / 100) ** 0.3)
    gen = _sweep("generalise", [500, 900, 1600], lambda d: 15.0)
    out = efficiency_metrics(mem, gen)
    assert out["mem_norm_slope"] == pytest.approx(0.3, abs=0.02)
    assert abs(out["gen_norm_slope_z"]) < 3 and out["mem_norm_slope_z_by_gen_se"] > 10
    assert out["gen_converged"] and out["mem_converged"]
    assert out["gen_fourier_key_share_min"] == 0.97 and out["mem_fourier_key_share_max"] == 0.01
    # every net at the same margin: the fixed-logit-scale norm is the raw norm
    assert out["logit_scale_reference"] == 12.0 and out["fixed_scale_slope_gap_z"] < 1e-9
    halved = efficiency_metrics(mem, gen.assign(logit_margin=6.0))
    # the generalising nets now need more unembedding for the same logits (and norm)
    assert halved["crossover_d_fixed_scale"] > out["crossover_d_fixed_scale"]
    # the lines cross where 10 (D/100)^0.3 = 15: D = 100 * 1.5^(1/0.3) ~ 386
    expected = 100 * 1.5 ** (1 / 0.3)
    sizes = [50, 100, 200, 400, 800, 1600]
    finals = _ungrok_finals({1.0: (380, 395, 400)}, {1.0: (380, 395, 400)}, sizes)
    cross = crossover_metrics(mem, gen, finals, np.random.default_rng(0))
    assert cross["crossover_d"] == pytest.approx(expected, rel=0.05)
    assert 0 < cross["crossover_d_log_se"] < 0.1 and 0 < cross["ungrok_dcrit_log_se"] < 0.1
    assert abs(cross["crossover_dcrit_z"]) < 2
    # every memorisation size fitted: the efficiency-free null is the largest one, far away
    assert cross["mem_fit_limit_d"] == 800 and cross["mem_fit_limit_dcrit_z"] > 2
    # a D_crit 3x away from the crossover is a failed prediction
    finals = _ungrok_finals({1.0: (1150, 1180, 1200)}, {1.0: (1150, 1180, 1200)}, sizes)
    assert crossover_metrics(mem, gen, finals, np.random.default_rng(0))["crossover_dcrit_z"] < -2


def test_size_buckets_group_similar_sizes_and_keep_every_run():
    sizes = [800, 80, 80, 140, 250, 450, 800, 140]
    groups = size_buckets(sizes)
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    assert [sorted({sizes[i] for i in g}) for g in groups] == [[80, 140], [250, 450], [800]]
    assert all(max(sizes[i] for i in g) <= 2 * min(sizes[i] for i in g) for g in groups)
