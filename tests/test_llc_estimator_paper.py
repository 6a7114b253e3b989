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


def test_quadrature_reference_matches_the_gaussian_closed_form():
    import math

    from sltrepro.papers.llc_estimator import reference

    # p(w) = w1: the tempered posterior is Gaussian in w1 (w2 only feels the tether), so
    # nbeta E[L_n(w) - L_n(0)] has a closed form to compare the grid with.
    x, y = monomial_data(1000, noise_std=0.5, seed=4)
    stats = reference.sufficient_stats(x, y)
    sxx, sxy, _, n = stats
    nbeta, gamma = n / math.log(n), 1.0
    a, b = sxx / (2 * 0.25 * n), sxy / (0.25 * n)
    precision = 2 * nbeta * a + gamma
    mean = nbeta * b / precision
    exact = nbeta * (a * (1 / precision + mean**2) - b * mean)
    got = reference.tempered_llc(
        reference.monomial([1, 0]), stats, noise_std=0.5, nbeta=nbeta, localization=gamma
    )
    assert got == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("powers", [[1, 3], [1, 2]])
def test_quadrature_reference_is_grid_converged(powers):
    import math

    from sltrepro.papers.llc_estimator import reference

    stats = reference.sufficient_stats(*monomial_data(1000, noise_std=0.5, seed=0))
    kw = {"noise_std": 0.5, "nbeta": 1000 / math.log(1000), "localization": 1.0}
    coarse = reference.tempered_llc(reference.monomial(powers), stats, **kw)
    fine = reference.tempered_llc(reference.monomial(powers), stats, **kw, width=9, points=2401)
    assert coarse == pytest.approx(fine, abs=5e-4)


def test_two_minimum_potential():
    import numpy as np

    from sltrepro.models.normal_crossing import TwoMinimaRegression, two_minima
    from sltrepro.papers.llc_estimator.pipeline import two_minima_lambda

    model = TwoMinimaRegression([0.5, -2.0])
    assert float(model.coefficient().detach()) == pytest.approx(two_minima(np.array(0.5), -2.0))
    assert float(TwoMinimaRegression([1.0, 0.3]).coefficient().detach()) == 0.0
    assert str(two_minima_lambda([0, 0])) == "1/4"
    assert str(two_minima_lambda([1.0, 0.3])) == "1/2"
    with pytest.raises(ValueError, match="not a minimum"):
        two_minima_lambda([0.5, 0.5])


def test_mala_reference_matches_the_gaussian_closed_form():
    import math

    import numpy as np

    from sltrepro.papers.llc_estimator import reference

    # a one-layer "DLN" [1, 1] is linear regression: its tempered posterior is Gaussian
    gen = np.random.default_rng(0)
    x = gen.normal(size=(1000, 1))
    y = 0.7 * x + gen.normal(size=(1000, 1))
    sxx, sxy, syy, n = reference.linear_stats(x, y)
    nbeta, gamma, w_star = n / math.log(n), 1.0, 0.7
    precision = nbeta * sxx[0, 0] / n + gamma
    mean = (nbeta * sxy[0, 0] / n + gamma * w_star) / precision
    second = 1 / precision + mean**2
    exact = nbeta * (sxx[0, 0] * (second - w_star**2) - 2 * sxy[0, 0] * (mean - w_star)) / (2 * n)
    out = reference.mala_dln_reference(
        [[np.array([[w_star]])]],
        [(sxx, sxy, syy, n)],
        nbeta=nbeta,
        localization=gamma,
        num_chains=8,
        num_steps=2000,
        num_burnin=300,
        seed=1,
    )
    assert abs(out["reference"][0] - exact) < 4 * out["se"][0] + 1e-3
    assert 0.4 < out["acceptance"][0] < 0.8
