"""Pieces of the llc_estimator paper that its smoke DAG does not pin down exactly."""

import pytest
import torch

from sltrepro.models.normal_crossing import MonomialRegression, gaussian_nll, monomial_data
from sltrepro.papers.llc_estimator.pipeline import PAPER_SGLD, dln_data, true_dln


@pytest.mark.parametrize(("widths", "rank"), [([3, 2, 3], 1), ([5, 3, 3, 5], 2), ([4, 4], 0)])
def test_true_dln_has_the_requested_rank(widths, rank):
    net = true_dln(widths, rank, seed=3)
    assert int(torch.linalg.matrix_rank(net.product().detach())) == rank
    x, y = dln_data(net, 50, seed=3)
    assert x.shape == (50, widths[0]) and y.shape == (50, widths[-1])


def test_true_dln_rejects_an_impossible_rank():
    with pytest.raises(ValueError, match="rank"):
        true_dln([5, 1, 5], 2, seed=0)  # a width-1 bottleneck caps the rank at 1


def test_monomial_model_and_loss():
    model = MonomialRegression([1, 3], init=[2.0, 0.5])
    assert float(model.coefficient().detach()) == pytest.approx(0.25)
    x, y = monomial_data(4000, noise_std=0.5, coefficient=0.25, seed=1)
    # at the truth the Gaussian NLL (no constants) is about 1/2 per sample
    assert float(gaussian_nll(0.5)(model(x), y).detach()) == pytest.approx(0.5, abs=0.05)
    assert set(PAPER_SGLD) == {"w1w2_3", "w1w2_2", "w2", "w1"}
