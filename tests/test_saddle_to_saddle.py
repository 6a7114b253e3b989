"""Unit tests for the saddle_to_saddle paper: DLN training, plateau detection, Saxe."""

import numpy as np
import pandas as pd
import pytest
import torch

from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.papers.saddle_to_saddle import pipeline
from sltrepro.plateaus import find_plateaus, rank_jumps
from sltrepro.theory import saxe_mode_trajectory
from sltrepro.train import dln as dln_train
from sltrepro.train.dln import (
    end_to_end,
    first_crossings,
    init_weights,
    log_spaced_steps,
    loss_and_grads,
    train_dln,
)


# ------------------------------------------------------------------ training code
def test_manual_gradients_match_autograd():
    widths = [3, 4, 5, 2]
    weights = init_weights(widths, [0.7, 1.3], [0, 1])
    target = torch.randn(2, 3, dtype=torch.float64)
    loss, grads = loss_and_grads(weights, target)
    leaves = [w.clone().requires_grad_(True) for w in weights]
    auto = 0.5 * (end_to_end(leaves) - target).pow(2).sum(dim=(-2, -1))
    for g, leaf in zip(grads, torch.autograd.grad(auto.sum(), leaves), strict=True):
        assert torch.allclose(g, leaf, atol=1e-12)
    assert torch.allclose(loss, auto.detach())


def test_end_to_end_matches_shared_model():
    weights = init_weights([3, 6, 2], [1.0], [4])
    net = DeepLinearNetwork.from_weights([w[0] for w in weights])
    assert torch.allclose(end_to_end(weights)[0].float(), net.product().detach(), atol=1e-6)


def test_init_reuses_draw_across_scales():
    first, second = init_weights([2, 3, 2], [1.0, 0.01], [5])
    assert torch.allclose(first[1], 0.01 * first[0])
    assert torch.allclose(second[1], 0.01 * second[0])
    with pytest.raises(ValueError):
        init_weights([2, 3], [0.0], [0])


def test_log_spaced_steps_cover_ends():
    steps = log_spaced_steps(1000, 10)
    assert steps[0] == 0 and steps[-1] == 1000 and np.all(np.diff(steps) > 0)


def test_first_crossings_interpolate():
    trace = np.array([[10.0, 8.0, 4.0, 1.0], [10.0, 10.0, 10.0, 10.0]])
    out = first_crossings(trace, [6.0])
    assert out[0, 0] == pytest.approx(1.5) and np.isnan(out[1, 0])


def test_training_reaches_target_and_resumes(tmp_path, monkeypatch):
    target = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    kwargs = dict(lr=0.05, num_steps=400, log_steps=log_spaced_steps(400, 10), levels=[2.0])
    kwargs["checkpoint_every"] = 100
    full = train_dln(init_weights([2, 4, 2], [0.1], [0]), target, verbose=False, **kwargs)
    assert full.loss[0, -1] < 1e-8
    np.testing.assert_allclose(full.svals[0, -1], [3.0, 1.0], atol=1e-4)

    def interrupted(iterable, **_):
        for step in iterable:
            if step == 250:
                raise KeyboardInterrupt
            yield step

    ckpt = tmp_path / "ckpt.pt"
    monkeypatch.setattr(dln_train, "progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_dln(init_weights([2, 4, 2], [0.1], [0]), target, checkpoint_path=ckpt, **kwargs)
    monkeypatch.undo()
    assert ckpt.exists()
    resumed = train_dln(
        init_weights([2, 4, 2], [0.1], [0]), target, checkpoint_path=ckpt, verbose=False, **kwargs
    )
    np.testing.assert_allclose(resumed.loss, full.loss, rtol=1e-10)
    np.testing.assert_allclose(resumed.crossings, full.crossings, rtol=1e-10)


def test_training_rejects_bad_lr():
    with pytest.raises(ValueError):
        train_dln(init_weights([2, 2], [1.0], [0]), torch.eye(2), lr=0, num_steps=3, log_steps=[0])


# ------------------------------------------------------------------ plateau detection
def staircase_curve(levels, drops, *, width=0.02, t_end=10.0):
    """A synthetic loss: sigmoid drops between ``levels`` at times ``drops`` on a log grid."""
    t = np.concatenate([[0.0], np.logspace(-3, np.log10(t_end), 800)])
    loss = np.full_like(t, levels[-1])
    for hi, lo, at in zip(levels[:-1], levels[1:], drops, strict=True):
        loss += (hi - lo) / (1 + np.exp((t - at) / width))
    return t, loss


def test_detects_each_plateau_of_a_staircase():
    levels = [100.0, 60.0, 30.0, 10.0, 1e-9]
    t, loss = staircase_curve(levels, [1.0, 2.0, 3.5, 6.0])
    found = find_plateaus(t, loss)
    assert len(found) == 4
    np.testing.assert_allclose([p.level for p in found], levels[:-1], rtol=1e-3)
    middles = [t[p.middle] for p in found]
    assert all(a < b for a, b in zip(middles[:-1], middles[1:], strict=True))


def test_no_plateau_for_an_immediate_exponential_decay():
    t = np.concatenate([[0.0], np.logspace(-4, 1, 500)])
    assert find_plateaus(t, 100 * np.exp(-5 * t)) == []


def test_short_stall_relative_to_its_drop_is_not_a_plateau():
    # A 0.1-long flat stretch followed by a fall lasting about 1: not a plateau (ratio < 0.5).
    t, loss = staircase_curve([100.0, 60.0, 1e-9], [1.0, 1.1], width=0.3)
    levels = [round(p.level) for p in find_plateaus(t, loss)]
    assert 60 not in levels


def test_unfinished_last_plateau_still_counts():
    t, loss = staircase_curve([100.0, 50.0, 20.0], [1.0, 50.0], t_end=10.0)
    assert [round(p.level) for p in find_plateaus(t, loss)] == [100, 50]


def test_plateau_input_checks():
    with pytest.raises(ValueError):
        find_plateaus([0, 1], [1, 1])
    with pytest.raises(ValueError):
        find_plateaus([0, 2, 1], [3, 2, 1])


def test_rank_jumps():
    assert rank_jumps([0, 0, 1, 1, 2, 2, 2]) == [(2, 0, 1), (4, 1, 2)]
    assert rank_jumps([3, 3]) == []


# ------------------------------------------------------------------ theory checks
def test_plateau_levels_and_best_rank_k():
    s = pipeline.singular_values([10, 20, 30, 40, 50])
    np.testing.assert_allclose(pipeline.plateau_levels(s), [2750, 1500, 700, 250, 50, 0])
    target = np.diag([1.0, 3.0, 2.0])
    np.testing.assert_allclose(
        pipeline.best_rank_k(target, 1), np.diag([0.0, 3.0, 0.0]), atol=1e-12
    )


def test_saxe_closed_form_limits():
    assert saxe_mode_trajectory(0.0, 5.0, 0.01) == pytest.approx(0.01)
    assert saxe_mode_trajectory(100.0, 5.0, 0.01) == pytest.approx(5.0)
    # Half-time (tau / 2s) ln(s/u0 - 1), from PAPERS.md.
    half = np.log(5.0 / 0.01 - 1) / 10.0
    assert saxe_mode_trajectory(half, 5.0, 0.01) == pytest.approx(2.5)


def test_saxe_closed_form_matches_fine_step_simulation():
    config = {"target_diag": [1.0, 2.0, 4.0], "saxe": {"lr": 5e-4, "time": 6.0, "u0": 1e-3}}
    table = pipeline.saxe_check(config, seed=0)
    err = ((table.simulated - table.closed_form).abs() / table.s).max()
    assert err < 5e-3
    np.testing.assert_allclose(table.groupby("mode").simulated.last(), [4.0, 2.0, 1.0], rtol=0.01)


def test_two_layer_escape_time_grows_like_log_inverse_scale():
    """The L = 2 law on a tiny problem: doubling ln(1/sigma) adds ln(1/sigma)/s_1."""
    s1 = 4.0
    target = torch.diag(torch.tensor([s1, 1.0], dtype=torch.float64))
    sigmas = [1e-4, 1e-8, 1e-12]
    hist = train_dln(
        init_weights([2, 6, 2], sigmas, [0]),
        target,
        lr=1e-3,
        num_steps=10000,
        log_steps=[0, 10000],
        levels=[0.5 * (s1**2 + 1) - 0.25 * s1**2],
        verbose=False,
    )
    t1 = hist.crossings[:, 0] * 1e-3
    slope = np.polyfit(np.log(1 / np.array(sigmas)), t1, 1)[0]
    assert slope * s1 == pytest.approx(1.0, rel=0.05)


# ------------------------------------------------------------------ escape path, sparsity, widths
def _orthonormal(n, k, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q.T if k > n else q


def test_layer_structure_of_the_optimal_escape_path():
    """W_l = c u_l u_(l-1)^T with the same c: rank 1, aligned, balanced (0, 1, 0)."""
    dirs = [_orthonormal(n, 1, seed)[:, 0] for seed, n in enumerate([5, 7, 7, 4])]
    weights = [2.0 * np.outer(dirs[l + 1], dirs[l]) for l in range(3)]
    table = pipeline.layer_structure(weights)
    assert list(table.layer) == [1, 2, 3]
    np.testing.assert_allclose(table.rank_one_ratio, 0.0, atol=1e-12)
    np.testing.assert_allclose(table.alignment[:2], 1.0, atol=1e-12)
    np.testing.assert_allclose(table.imbalance[:2], 0.0, atol=1e-12)
    assert np.isnan(table.alignment.iloc[-1]) and np.isnan(table.imbalance.iloc[-1])


def test_layer_structure_flags_random_unbalanced_and_misaligned_layers():
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((20, 10)), rng.standard_normal((20, 20))]
    random = pipeline.layer_structure(layers)
    assert random.rank_one_ratio.min() > 0.5  # a Gaussian layer is far from rank 1
    assert random.alignment.iloc[0] < 0.9
    assert random.imbalance.iloc[0] > 0.3
    # rank 1 and aligned but one layer twice the other's scale: unbalanced only
    u, v, w = (_orthonormal(n, 1, s)[:, 0] for s, n in enumerate([4, 6, 3]))
    scaled = pipeline.layer_structure([np.outer(v, u), 2.0 * np.outer(w, v)])
    assert scaled.alignment.iloc[0] == pytest.approx(1.0)
    assert scaled.imbalance.iloc[0] == pytest.approx(3.0)  # ||4 vv^T - vv^T|| / ||vv^T||


def test_weight_ranks_count_relative_to_the_largest():
    assert pipeline.weight_ranks([10.0, 5.0, 0.3, 0.1], 0.02) == 3
    assert pipeline.weight_ranks([10.0, 0.1], 0.02) == 1


def test_gap_fraction_places_the_estimate_between_count_and_aoyagi():
    assert pipeline.gap_fraction(25.5, 50.0, 25.5) == pytest.approx(0.0)
    assert pipeline.gap_fraction(50.0, 50.0, 25.5) == pytest.approx(1.0)
    assert pipeline.gap_fraction(30.4, 50.0, 25.5) == pytest.approx(0.2)
    assert np.isnan(pipeline.gap_fraction(26.0, 25.5, 25.5))  # lambda = count: no test


def test_width_slopes_recover_power_laws_and_refuse_bad_values():
    widths = np.array([10, 20, 40, 80])
    table = pd.DataFrame(
        {
            "regime": ["ntk"] * 4 + ["saddle"] * 4,
            "seed": 0,
            "width": np.concatenate([widths, widths]),
            "distance": np.concatenate([3.0 * widths**-0.4, [1.0, 2.0, np.nan, 3.0]]),
        }
    )
    slopes = pipeline.width_slopes(table, "distance").set_index("regime")
    assert slopes.slope["ntk"] == pytest.approx(-0.4)
    assert np.isnan(slopes.slope["saddle"])


def _tiny_structure_config():
    return {
        "seed": 0,
        "num_seeds": 1,
        "log_points_per_decade": 40,
        "rank_rtol": 0.02,
        "plateau": {"flat_tol": 0.05, "merge_tol": 0.05, "min_ratio": 0.5, "converged_rtol": 1e-4},
        "llc": {"dim": 6, "target_singular_values": [12.0, 6.0]},
        "structure": {
            "widths": [6, 12, 12, 6],
            "small_init": {"gamma": 5.6, "lr": 1e-2, "num_steps": 10000},
            "large_init": {"gamma": 0.5, "lr": 5e-3, "num_steps": 3000},
        },
    }


def test_structure_runs_small_init_escape_path_and_sparsity():
    """Small init (sigma ~1e-3): rank-1, aligned, balanced layers on plateau 1 and rank-2
    layers at the end; large init: dense layers; the Gaussian init fails every test."""
    table = pipeline.structure_runs(_tiny_structure_config(), verbose=False)
    metrics = pipeline.structure_metrics(table, target_rank=2)
    assert metrics["structure_plateau1_found"]
    assert metrics["structure_converged_max_loss_ratio"] < 1e-4
    assert metrics["escape_path_rank_one_ratio_max"] < 0.02
    assert metrics["escape_path_alignment_min"] > 0.98
    assert metrics["escape_path_imbalance_max"] < 0.02
    assert metrics["escape_path_init_rank_one_ratio_max"] > 0.5
    assert metrics["escape_path_init_alignment_min"] < 0.9
    assert metrics["sparsity_small_init_max_rank"] == 2
    assert metrics["sparsity_large_init_min_rank"] > 2
    assert metrics["sparsity_init_max_rank"] > 2
