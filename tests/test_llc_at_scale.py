"""Furman & Lau (2024) workflow: architecture sampler, theory wiring, metrics bookkeeping."""

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from sltrepro.models.dln import (
    DeepLinearNetwork,
    numerical_rank,
    random_low_rank_weights,
    sample_widths,
)
from sltrepro.papers.llc_at_scale.pipeline import (
    exact_data,
    family_of,
    make_data,
    mse,
    sample_architecture,
    summary_metrics,
)
from sltrepro.papers.llc_at_scale.rescaling import (
    ReLUNet,
    hessian_trace,
    rescaled,
    rescaling_experiment,
    teacher_and_data,
)
from sltrepro.theory import dln_learning_coefficient

FAMILY = dict(count=40, min_width=2, max_width=12, min_depth=1, max_depth=5)
CONFIG = {
    "seed": 3,
    "rank_cut_prob": 0.5,
    "families": [{"name": "a", **FAMILY}, {"name": "b", **FAMILY, "count": 5}],
}


@pytest.mark.parametrize("index", range(40))
def test_sampled_rank_is_numerical_rank_of_the_product(index):
    arch = sample_architecture(CONFIG, index)
    product = DeepLinearNetwork.from_weights(arch.weights).product().detach().double()
    # An independent rank: float64 SVD with a tolerance far above float32 rounding of the
    # zeroed singular values and far below the surviving ones.
    s = torch.linalg.svdvals(product)
    assert arch.rank == int((s > 1e-4 * s[0]).sum())
    # Generic layers: the product's rank is the smallest layer rank, and each layer has the
    # rank the sampler says it cut it to.
    assert arch.rank == min(arch.layer_ranks)
    for w, r in zip(arch.weights, arch.layer_ranks, strict=True):
        assert numerical_rank(w) == r


def test_rank_cuts_happen_and_keep_at_least_rank_one():
    gen = torch.Generator().manual_seed(0)
    widths = [8, 9, 10, 7]
    full = [min(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    cut_any = False
    for _ in range(20):
        _, ranks = random_low_rank_weights(widths, gen, cut_prob=0.5)
        assert all(1 <= r <= f for r, f in zip(ranks, full, strict=True))
        cut_any |= ranks != full
    assert cut_any
    _, never = random_low_rank_weights(widths, gen, cut_prob=0.0)
    assert never == full


def test_sample_widths_respects_ranges():
    gen = torch.Generator().manual_seed(1)
    seen_depths = set()
    for _ in range(200):
        widths = sample_widths(gen, min_width=5, max_width=7, min_depth=2, max_depth=4)
        assert all(5 <= h <= 7 for h in widths)
        seen_depths.add(len(widths) - 1)
    assert seen_depths == {2, 3, 4}
    with pytest.raises(ValueError, match="1 <= min <= max"):
        sample_widths(gen, min_width=5, max_width=4, min_depth=2, max_depth=4)


def test_architecture_carries_aoyagis_lambda_and_is_reproducible():
    a, b = sample_architecture(CONFIG, 7), sample_architecture(CONFIG, 7)
    assert a.widths == b.widths and all(
        torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True)
    )
    lam, mult = dln_learning_coefficient(a.widths, a.rank)
    assert (a.lam, a.multiplicity) == (float(lam), mult)
    assert a.num_params == DeepLinearNetwork(a.widths).num_params()


def test_family_indexing():
    assert family_of(CONFIG, 39)["name"] == "a"
    assert family_of(CONFIG, 40)["name"] == "b"
    with pytest.raises(ValueError, match="has 45 architectures"):
        family_of(CONFIG, 45)


def test_data_is_the_noiseless_teacher():
    arch = sample_architecture(CONFIG, 2)
    x, y = make_data(arch, 64)
    assert x.abs().max() <= 10 and x.shape == (64, arch.widths[0])
    truth = DeepLinearNetwork.from_weights(arch.weights)
    torch.testing.assert_close(truth(x), y, rtol=1e-4, atol=1e-4)


def _table(lam, hat_true, hat_sgd, diverged=0, family=("a", "a", "b", "b")):
    n = len(lam)
    table = pd.DataFrame(
        {
            "family": list(family)[:n],
            "num_params": np.arange(n) + 10,
            "lambda": lam,
            "lambda_hat_true": hat_true,
            "lambda_hat_sgd": hat_sgd,
            "acceptance_true": 0.9,
            "acceptance_exact": [0.95, 0.97, 0.99, 0.99][:n],
            "lambda_hat_exact": hat_true,
            "healthy_exact": True,
            "chains_true": 4,
            "chains_sgd": 4,
            "diverged_chains_true": [diverged] + [0] * (n - 1),
            "diverged_chains_sgd": 0,
            "healthy_true": [diverged == 0] + [True] * (n - 1),
            "healthy_sgd": True,
        }
    )
    table["rel_error_true"] = (table["lambda"] - table["lambda_hat_true"]) / table["lambda"]
    table["rel_error_sgd"] = (table["lambda"] - table["lambda_hat_sgd"]) / table["lambda"]
    table["rel_error_exact"] = table["rel_error_true"]
    table["ratio_sgd_true"] = table["lambda_hat_sgd"] / table["lambda_hat_true"]
    table["lambda_rank_count"] = 0.5 * table["lambda"] + [0.0, 0.0, 0.0, 3.0][:n]
    table["rel_error_rank_count"] = 1 - table["lambda_rank_count"] / table["lambda"]
    return table


def test_summary_metrics_on_known_tables():
    lam = np.array([1.0, 2.0, 4.0, 8.0])
    exact = summary_metrics(_table(lam, lam, lam))
    assert exact["spearman_true"] == pytest.approx(1.0)
    assert exact["median_abs_rel_error_true"] == 0.0
    assert exact["median_ratio_sgd_true"] == 1.0
    assert exact["frac_rel_error_in_paper_band"] == 1.0
    # the rank-count null on the same nets: rel. errors 0.5, 0.5, 0.5, 0.125
    assert exact["median_abs_rel_error_rank_count"] == 0.5
    assert exact["max_abs_rel_error_rank_count"] == 0.5
    assert exact["frac_rel_error_in_paper_band_rank_count"] == 1.0
    assert exact["spearman_rank_count"] == pytest.approx(1.0)
    assert exact["median_abs_rel_error_true_over_rank_count"] == 0.0
    # Underestimating by 40% is inside the paper's band [-0.1, 0.5]; overestimating by 20% is not.
    mixed = summary_metrics(_table(lam, lam * [0.6, 0.6, 1.2, 1.2], lam * 0.6, diverged=1))
    assert mixed["median_rel_error_true"] == pytest.approx(0.1)
    assert mixed["frac_rel_error_in_paper_band"] == 0.5
    assert mixed["diverged_chain_fraction_true"] == pytest.approx(1 / 16)
    # A run whose every chain diverged has no estimate: excluded, never a number.
    nan_run = summary_metrics(_table(lam, [math.nan, 2.0, 4.0, 8.0], lam, diverged=4))
    assert nan_run["median_abs_rel_error_true"] == 0.0
    assert nan_run["diverged_chain_fraction_true"] == pytest.approx(4 / 16)
    assert nan_run["llc_healthy_fraction_true"] == 0.75 and exact["llc_healthy_fraction_true"] == 1
    assert exact["llc_healthy_true"] is True and nan_run["llc_healthy_true"] is False


def test_null_comparison_per_family_and_exact_acceptance():
    lam = np.array([1.0, 2.0, 4.0, 8.0])
    # ours: exact on family a, 20% under on family b; the null: half of lambda, +3 on net 3
    m = summary_metrics(_table(lam, lam * [1, 1, 0.8, 0.8], lam))
    assert m["median_abs_rel_error_true_a"] == 0.0
    assert m["median_abs_rel_error_true_b"] == pytest.approx(0.2)
    assert m["median_abs_rel_error_rank_count_b"] == pytest.approx((0.5 + 0.125) / 2)
    assert m["median_abs_rel_error_true_over_rank_count_b"] == pytest.approx(0.2 / 0.3125)
    assert m["median_abs_rel_error_true_over_rank_count_a"] == 0.0
    # Spearman is undefined on two nets per family, and defined (1 - 1 = 0) on all four
    assert m["spearman_true_minus_rank_count_a"] is None
    assert m["spearman_true_minus_rank_count"] == pytest.approx(0.0)
    assert m["median_acceptance_exact"] == pytest.approx(0.98)
    assert m["min_acceptance_exact"] == pytest.approx(0.95)
    # a null that orders the nets worse than ours: our Spearman beats it
    worse = _table(lam, lam, lam)
    worse["lambda_rank_count"] = [4.0, 1.0, 2.0, 8.0]
    assert summary_metrics(worse)["spearman_rank_count"] == pytest.approx(0.4)  # 1 - 6*6/60
    assert summary_metrics(worse)["spearman_true_minus_rank_count"] == pytest.approx(0.6)


def test_exact_data_reads_the_full_data_loss_at_any_weights():
    arch = sample_architecture(CONFIG, 3)
    data = make_data(arch, 4000)
    rows, targets = exact_data(arch, data)
    assert rows.shape == (arch.widths[0], arch.widths[0])
    gen = torch.Generator().manual_seed(5)
    for scale in (0.0, 0.01, 0.3):  # w*, near it, far from it
        weights = [w + scale * torch.randn(w.shape, generator=gen) for w in arch.weights]
        model = DeepLinearNetwork.from_weights(weights)
        with torch.no_grad():
            full = mse(model(data[0]), data[1]).item()
            gram = mse(model(rows), targets).item()
        assert gram == pytest.approx(full, rel=1e-3, abs=1e-6)


def test_family_rank_cut_prob_overrides_the_profile():
    cut = {"name": "cut", **FAMILY, "min_width": 4, "rank_cut_prob": 1.0}
    config = {**CONFIG, "families": [cut]}
    for index in range(10):
        arch = sample_architecture(config, index)
        full = [min(a, b) for a, b in zip(arch.widths[:-1], arch.widths[1:], strict=True)]
        assert all(r < f for r, f in zip(arch.layer_ranks, full, strict=True))


def test_rescaling_keeps_the_function_and_changes_the_hessian_trace():
    teacher, data = teacher_and_data([3, 5, 2], 500, seed=1)
    state = {k: v.detach() for k, v in teacher.state_dict().items()}
    model = ReLUNet([3, 5, 2])
    for alpha in (0.5, 3.0):
        model.load_state_dict(rescaled(state, alpha))
        with torch.no_grad():
            torch.testing.assert_close(model(data[0]), data[1], rtol=1e-4, atol=1e-4)
    assert torch.equal(rescaled(state, 1.0)["out.weight"], state["out.weight"])
    with pytest.raises(ValueError, match="> 0"):
        rescaled(state, -1.0)

    # Independent trace: at w* the residual is 0, so the Hessian of the MSE is its
    # Gauss-Newton part 2/(n d_out) sum_i |d f(x_i)/d theta|^2.
    def gauss_newton_trace(st):
        params = {k: v.clone().double().requires_grad_() for k, v in st.items()}
        out = torch.func.functional_call(model.double(), params, (data[0].double(),))
        total = 0.0
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                grads = torch.autograd.grad(out[i, j], list(params.values()), retain_graph=True)
                total += sum(float(g.pow(2).sum()) for g in grads)
        model.float()
        return 2 * total / out.numel()

    traces = {a: hessian_trace(model, rescaled(state, a), data) for a in (1.0, 3.0)}
    assert traces[1.0] == pytest.approx(gauss_newton_trace(state), rel=1e-6)
    assert traces[3.0] == pytest.approx(gauss_newton_trace(rescaled(state, 3.0)), rel=1e-6)
    assert traces[3.0] > 2 * traces[1.0]  # the null is not invariant


def _rescaling_config(alphas):
    return {
        "seed": 0,
        "llc": {"draw_fraction": 0.5, "localization": 1.0, "batch_size": 50, "mala_every": 5},
        "rescaling": {
            "widths": [2, 3, 1],
            "alphas": alphas,
            "num_samples": 200,
            "step_size": 1e-4,
            "num_steps": 40,
            "num_chains": 2,
        },
    }


def test_rescaling_experiment_needs_alpha_one():
    with pytest.raises(ValueError, match="include 1"):
        rescaling_experiment(_rescaling_config([0.5, 2.0]), "cpu", None)


def test_rescaling_experiment_reports_both_changes_and_health():
    config = _rescaling_config([1, 3.0])
    m = rescaling_experiment(config, "cpu", logging.getLogger("test"))
    llc1, llc3 = m["rescaling_llc_alpha_1"], m["rescaling_llc_alpha_3"]
    assert m["rescaling_max_rel_change_llc"] == pytest.approx(abs(llc3 / llc1 - 1))
    tr1, tr3 = m["rescaling_hessian_trace_alpha_1"], m["rescaling_hessian_trace_alpha_3"]
    assert m["rescaling_max_rel_change_hessian_trace"] == pytest.approx(abs(tr3 / tr1 - 1))
    assert tr3 > tr1 and m["rescaling_num_params"] == 2 * 3 + 3 + 3 + 1
    assert m["rescaling_llc_estimates"] == 2 and isinstance(m["rescaling_llc_healthy"], bool)
