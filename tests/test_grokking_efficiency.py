"""Modular arithmetic data, the one-layer transformer's fast path, training, and the analysis."""

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
from sltrepro.papers.grokking_efficiency.pipeline import (
    critical_size,
    delay_factor,
    longest_plateau,
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


def test_ungrok_metrics_and_plateau():
    sizes = [100, 200, 400]
    rows = [
        {"weight_decay": wd, "size": d, "seed": s, "train_acc": 1.0, "test_acc": acc}
        for wd, accs in ((1.0, (0.1, 0.4, 0.9)), (2.0, (0.0, 0.6, 1.0)))
        for d, acc in zip(sizes, accs, strict=True)
        for s in (0, 1)
    ]
    out = ungrok_metrics(pd.DataFrame(rows), sizes)
    assert out["ungrok_grid_ratio"] == pytest.approx(2.0)
    assert out["ungrok_dcrit"] == out["ungrok_dcrit_wd1"]
    assert 200 < out["ungrok_dcrit_wd1"] < 400 and 100 < out["ungrok_dcrit_wd2"] < 200
    assert 0 < out["ungrok_dcrit_wd_spread_grid_steps"] <= 2
    assert out["ungrok_test_acc_smallest_max"] == pytest.approx(0.1)
    assert out["ungrok_test_acc_largest_min"] == pytest.approx(0.9)
    hist = pd.DataFrame({"step": [0, 10, 100, 1000, 5000], "test_acc": [0, 0.5, 0.6, 0.95, 0.5]})
    assert longest_plateau(hist, 0.2, 0.9) == 90.0
