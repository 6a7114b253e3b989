"""Furman & Lau (2024) workflow: architecture sampler, theory wiring, metrics bookkeeping."""

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
    family_of,
    make_data,
    sample_architecture,
    summary_metrics,
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


def _table(lam, hat_true, hat_sgd, diverged=0):
    n = len(lam)
    table = pd.DataFrame(
        {
            "num_params": np.arange(n) + 10,
            "lambda": lam,
            "lambda_hat_true": hat_true,
            "lambda_hat_sgd": hat_sgd,
            "acceptance_true": 0.9,
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
