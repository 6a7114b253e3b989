"""The toy model of superposition: closed form, k-gon critical points, LLC, stacked SGD, MALA."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sltrepro.llc import estimate_llc
from sltrepro.models.tms import (
    ToyModel,
    classify,
    kgon_params,
    monte_carlo_loss,
    population_loss,
    sample_inputs,
    solve_kgon,
    squared_error,
)
from sltrepro.papers.tms_phase_transitions import pipeline, posterior
from sltrepro.train.tms import train_stack

# Chen et al. 2023, Sec. 4: (k, c, extras) -> (l*, b*, loss), 5 printed decimals.
PAPER_TABLE = {
    (5, 6, "-"): (1.17046, -0.28230, 0.06874),
    (5, 6, "+"): (1.17046, -0.28230, 0.06180),
    (6, 6, ""): (1.32053, -0.61814, 0.04819),
    (4, 6, "+-"): (1.0, 0.0, 0.10417),
    (4, 5, "-"): (1.0, 0.0, 0.06667),
    (4, 5, "+"): (1.0, 0.0, 0.05667),
    (5, 5, ""): (1.17046, -0.28230, 0.01583),
}


def grad_max(weight, bias):
    return pipeline.gradient_max(weight, bias)


def test_closed_form_matches_monte_carlo_off_the_critical_set():
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        weight = torch.randn(2, 6, generator=gen, dtype=torch.float64)
        bias = 0.5 * torch.randn(6, generator=gen, dtype=torch.float64)
        mc, se = monte_carlo_loss(weight, bias, 200_000, gen)
        assert abs(float(population_loss(weight, bias)) - mc) < 5 * se


def test_closed_form_batches_over_leading_dims():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(3, 2, 6, generator=gen, dtype=torch.float64)
    bias = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    each = [float(population_loss(weight[i], bias[i])) for i in range(3)]
    assert population_loss(weight, bias).numpy() == pytest.approx(each, rel=1e-12)


@pytest.mark.parametrize("key", list(PAPER_TABLE))
def test_kgons_are_critical_with_the_papers_values(key):
    k, c, extras = key
    point = solve_kgon(k, c, extras)
    length, bias, loss = PAPER_TABLE[key]
    weight, b = point.params(rotation=0.7)
    assert point.length == pytest.approx(length, abs=1e-5)
    assert point.bias == pytest.approx(bias, abs=1e-5)
    assert float(population_loss(weight, b)) == pytest.approx(loss, abs=1e-5)
    assert grad_max(weight, b) < 1e-10


def test_a_perturbed_kgon_is_not_critical():
    weight, bias = solve_kgon(6, 6).params()
    assert grad_max(weight * 1.05, bias) > 1e-3


def test_positive_zero_column_lowers_the_loss_by_one_over_4c_squared():
    dead = population_loss(*solve_kgon(5, 6, "-").params())
    positive = population_loss(*solve_kgon(5, 6, "+").params())
    assert float(dead - positive) == pytest.approx(1 / 144, abs=1e-12)


def test_solve_kgon_rejects_bad_extras():
    with pytest.raises(ValueError, match="extras"):
        solve_kgon(5, 6, "")


def test_classify_counts_live_columns_and_zero_column_signs():
    weight, bias = kgon_params(5, 6, 1.17, -0.28, "+")
    assert classify(weight, bias) == (5, "+")
    weight, bias = kgon_params(4, 6, 1.0, 0.0, "-+")
    assert classify(weight, bias) == (4, "+-")


def test_forward_chains_equals_forward():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(3, 2, 6, generator=gen, dtype=torch.float64)
    bias = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    x = torch.stack([sample_inputs(7, 6, gen) for _ in range(3)])
    chains = ToyModel.forward_chains({"weight": weight, "bias": bias}, x)
    for i in range(3):
        assert torch.allclose(chains[i], ToyModel(weight[i], bias[i])(x[i]))


def test_llc_estimator_orders_the_5gon_below_the_6gon():
    """SGLD at the 5-gon (lambda 7) and the 6-gon (lambda 8.5) of the paper, with the cpu
    profile's step size and localization: healthy, in the right order and within a few
    units of the theory at a short budget."""
    estimates = {}
    for name, (k, extras) in {"5-": (5, "-"), "6": (6, "")}.items():
        gen = torch.Generator().manual_seed(3)
        x = sample_inputs(1000, 6, gen)
        model = pipeline.refine_on_data(*solve_kgon(k, 6, extras).params(), x, lr=0.01, steps=200)
        result = estimate_llc(
            model,
            squared_error,
            (x, x),
            num_chains=8,
            num_draws=400,
            num_burnin=100,
            step_size=5e-3,
            localization=5.0,
            batch_size=1000,
            seed=0,
            device="cpu",
            verbose=False,
        )
        assert result.healthy, result.health_reasons
        estimates[name] = result.llc_mean
    assert 4 < estimates["5-"] < estimates["6"] < 12


def test_stacked_sgd_equals_one_at_a_time():
    seeds = [4, 5, 6]
    gen = torch.Generator().manual_seed(7)
    weight = 0.1 * torch.randn(3, 2, 6, generator=gen, dtype=torch.float64)
    bias = torch.zeros(3, 6, dtype=torch.float64)
    data = torch.stack([sample_inputs(50, 6, gen) for _ in seeds])
    kw = dict(lr=0.05, batch_size=5, num_steps=1200, log_steps=[0, 10, 600, 1200], verbose=False)
    stacked = train_stack(weight, bias, data, seeds, **kw)
    for i, seed in enumerate(seeds):
        alone = train_stack(weight[i : i + 1], bias[i : i + 1], data[i : i + 1], [seed], **kw)
        np.testing.assert_allclose(stacked.weight[i], alone.weight[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stacked.loss[i], alone.loss[0], rtol=1e-10)
    assert stacked.loss[:, -1].max() < stacked.loss[:, 0].min()


def test_log_posterior_is_minus_n_loss_minus_prior():
    gen = torch.Generator().manual_seed(8)
    x = sample_inputs(40, 6, gen)
    weight, bias = solve_kgon(6, 6).params()
    logp = posterior.log_posterior(weight[None], bias[None], x, prior_std=2.0)
    with torch.no_grad():
        sse = 40 * float(squared_error(ToyModel(weight, bias)(x), x))
    prior = (weight.pow(2).sum() + bias.pow(2).sum()) / 8
    assert float(logp[0]) == pytest.approx(-sse - float(prior), rel=1e-12)


def test_mala_accepts_tiny_steps_and_keeps_rejected_states():
    gen = torch.Generator().manual_seed(9)
    x = sample_inputs(100, 6, gen)
    weight, bias = solve_kgon(5, 6, "-").params()
    state = posterior.init(weight.expand(4, -1, -1), bias.expand(4, -1), x, 1.0)
    tiny, info = posterior.step(state, x, 1.0, torch.full((4,), 1e-10, dtype=torch.float64), gen)
    assert float(info.acceptance.min()) > 0.99
    _, info = posterior.step(state, x, 1.0, torch.full((4,), 10.0, dtype=torch.float64), gen)
    huge, info = posterior.step(state, x, 1.0, torch.full((4,), 10.0, dtype=torch.float64), gen)
    rejected = ~info.accepted
    assert torch.equal(huge.weight[rejected], state.weight[rejected])


def test_mala_samples_a_gaussian_prior_when_there_is_no_data_term():
    """With one input of magnitude 0 the likelihood is flat in W: W's marginal is the prior."""
    x = torch.zeros(2, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(10)
    state = posterior.init(
        torch.zeros(64, 2, 6, dtype=torch.float64), -torch.ones(64, 6, dtype=torch.float64), x, 0.5
    )
    eps = torch.full((64,), 0.05, dtype=torch.float64)
    draws = []
    for t in range(600):
        state, _ = posterior.step(state, x, 0.5, eps, gen)
        if t >= 200:
            draws.append(state.weight)
    assert float(torch.stack(draws).std()) == pytest.approx(0.5, rel=0.05)


def test_predicted_transition_solves_the_free_energy_balance():
    n = pipeline.predicted_transition(0.06874, 7.0, 0.04819, 8.5)
    assert n * (0.06874 - 0.04819) == pytest.approx(1.5 * math.log(n), rel=1e-9)
    assert n > 1.5 / (0.06874 - 0.04819)
    assert pipeline.predicted_transition(0.04, 7.0, 0.05, 8.5) is None


def test_measured_transition_interpolates_in_log_n():
    occ = pd.DataFrame({"n": [100, 400], "occ5": [0.8, 0.2], "occ6": [0.2, 0.8]})
    assert pipeline.measured_transition(occ) == pytest.approx(200.0)
    assert pipeline.measured_transition(occ.assign(occ6=[0.9, 0.9])) == 0.0
    assert pipeline.measured_transition(occ.assign(occ6=[0.1, 0.1])) is None


def test_pattern_test_null_is_random_llc_order():
    rows = []
    for seed in range(10):
        rows += [
            {"seed": seed, "index": 0, "level": 0.2, "llc_mean": 3.0},
            {"seed": seed, "index": 1, "level": 0.1, "llc_mean": 6.0},
        ]
    out = pipeline.pattern_test(pd.DataFrame(rows))
    assert out["sgd_pattern_fraction"] == 1.0
    assert out["sgd_pattern_null_fraction"] == 0.5
    assert out["sgd_pattern_pvalue"] == pytest.approx(0.5**10)
