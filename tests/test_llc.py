"""The LLC estimator against known learning coefficients, its bad-input paths, determinism.

Tolerances: each known-lambda test runs a few chains whose per-chain estimates scatter by
std s (measured at these settings, printed on failure). The check is |mean - lambda| within
a bias allowance (SGLD at finite n and step size reads slightly off; the allowance for each
case is stated beside it) plus 3 s / sqrt(chains).
"""

import math
import warnings

import numpy as np
import pytest
import torch

from sltrepro.llc import (
    ROW_FIELDS,
    LLCDivergenceError,
    SamplerSettings,
    default_nbeta,
    estimate_llc,
    full_data_loss,
)
from sltrepro.llc_calibration import calibrate
from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.models.normal_crossing import MonomialRegression, gaussian_nll, monomial_data
from sltrepro.plots import failed_checks
from sltrepro.theory import dln_learning_coefficient, normal_crossing_lambda, regular_lambda

NLL = gaussian_nll(1.0)  # 0.5 * squared error: unit-variance Gaussian regression


pytestmark = pytest.mark.usefixtures("one_thread")


def _regular_problem(n=1000, d_in=3, seed=0):
    """Linear regression with bias (d = d_in + 1) at its least-squares fit: a regular model."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen)
    y = x @ torch.randn(d_in, 1, generator=gen) + torch.randn(n, 1, generator=gen)
    model = torch.nn.Linear(d_in, 1)
    design = torch.cat([x, torch.ones(n, 1)], 1)
    sol = torch.linalg.lstsq(design, y).solution
    with torch.no_grad():
        model.weight.copy_(sol[:d_in].T)
        model.bias.copy_(sol[d_in])
    return model, (x, y)


def _dln_problem(widths, rank, n=1000, seed=0):
    """A DLN at a true parameter of product rank ``rank``, with unit-variance noisy targets."""
    gen = torch.Generator().manual_seed(seed)
    net = DeepLinearNetwork(widths)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        # cut the first layer to rank r, so the product has rank r
        u, s, vh = torch.linalg.svd(net.layers[0].weight, full_matrices=False)
        s[rank:] = 0
        net.layers[0].weight.copy_(u @ torch.diag(s) @ vh)
    x = torch.randn(n, widths[0], generator=gen)
    with torch.no_grad():
        y = net(x) + torch.randn(n, widths[-1], generator=gen)
    return net, (x, y)


def _close(result, truth, bias):
    allowance = bias + 3 * result.llc_std / math.sqrt(len(result.llc_per_chain))
    assert abs(result.llc_mean - truth) <= allowance, (
        f"estimate {result.llc_mean:.3f} (chain std {result.llc_std:.3f}) vs lambda {truth:.3f};"
        f" allowed {allowance:.3f}"
    )
    return allowance


def test_regular_model_full_batch():
    model, data = _regular_problem()
    truth = float(regular_lambda(4)[0])
    res = estimate_llc(
        model, NLL, data, num_chains=4, num_draws=600, num_burnin=100, step_size=1e-3,
        batch_size=10_000, seed=1, verbose=False,
    )  # fmt: skip
    # eps * curvature = 1e-3 * nbeta(=145) ~ 0.15: discretisation inflates lambda by ~4%
    _close(res, truth, bias=0.1 * truth)
    assert res.loss_trace.shape == (4, 600) and res.delta_trace.shape == (4, 600)
    assert not res.diverged.any()
    assert np.all(res.mala_acceptance > 0.9)
    assert res.nbeta == pytest.approx(1000 / math.log(1000))
    assert res.init_loss == pytest.approx(float(full_data_loss(model, NLL, data)), rel=1e-5)


def test_regular_model_rmsprop():
    model, data = _regular_problem()
    truth = float(regular_lambda(4)[0])
    res = estimate_llc(
        model, NLL, data, num_chains=4, num_draws=600, num_burnin=100, step_size=0.01,
        batch_size=10_000, seed=2, sampler="rmsprop_sgld", verbose=False,
    )  # fmt: skip
    _close(res, truth, bias=0.15 * truth)


def test_paired_minibatches_cut_variance():
    model, data = _regular_problem()
    kw = dict(num_chains=4, num_draws=400, num_burnin=50, step_size=5e-4, batch_size=64)
    plain = estimate_llc(model, NLL, data, seed=3, verbose=False, **kw)
    paired = estimate_llc(model, NLL, data, seed=3, paired=True, verbose=False, **kw)
    # same chains (same seed, same updates); only the reading of each draw differs
    np.testing.assert_allclose(plain.loss_trace, paired.loss_trace)
    assert paired.delta_trace.var() < 0.2 * plain.delta_trace.var()
    # minibatch gradient noise heats the chain a little: allow 25% over lambda = 2
    _close(paired, 2.0, bias=0.5)


def test_paired_divergence_check_reads_the_paired_difference():
    """A per-sample constant in the loss (here 300 z_i, z ~ N(0, 1), a data-dependent log
    normaliser) scatters minibatch losses far past the divergence threshold at w* itself;
    paired chains read loss(w) - loss(w*) on the same batch, where it cancels exactly."""
    model, (x, y) = _regular_problem()
    z = torch.randn(len(y), 1, generator=torch.Generator().manual_seed(9))

    def nll_plus_constant(pred, target):
        return NLL(pred, target[:, :1]) + 300.0 * target[:, 1].mean()

    data = (x, torch.cat([y, z], 1))
    kw = dict(num_chains=4, num_draws=400, num_burnin=50, step_size=5e-4, batch_size=64)
    with pytest.raises(LLCDivergenceError):
        estimate_llc(model, nll_plus_constant, data, seed=3, verbose=False, **kw)
    paired = estimate_llc(model, nll_plus_constant, data, seed=3, paired=True, verbose=False, **kw)
    assert not paired.diverged.any()
    _close(paired, 2.0, bias=0.5)  # as in test_paired_minibatches_cut_variance


@pytest.mark.parametrize(("powers", "band"), [((1, 3), (0.05, 0.3)), ((0, 1), (0.35, 0.6))])
def test_normal_crossings(powers, band):
    """Table 1 of Lau et al.: y = p(w) x + N(0, 0.5^2), n = 1000. Their SGLD read 0.11 (0.07)
    for w1 w2^3 (lambda 1/6) and 0.45 (0.11) for w2 (lambda 1/2); the band is the paper's
    mean +- ~2 of its stds, clipped to stay away from 0 and from the other case."""
    truth = float(normal_crossing_lambda([k for k in powers])[0])
    res = estimate_llc(
        MonomialRegression(powers), gaussian_nll(0.5), monomial_data(1000, seed=4),
        num_chains=4, num_draws=800, num_burnin=100, step_size=5e-4, batch_size=1000,
        seed=5, verbose=False,
    )  # fmt: skip
    assert band[0] < res.llc_mean < band[1], (res.llc_mean, truth)


def test_dln_rrr_against_aoyagi():
    """Reduced-rank regression [3, 2, 3] at rank 1: Aoyagi's lambda is 7/2 (d = 12)."""
    widths, rank = [3, 2, 3], 1
    truth = float(dln_learning_coefficient(widths, rank)[0])
    net, data = _dln_problem(widths, rank, seed=6)
    res = estimate_llc(
        net, NLL, data, num_chains=4, num_draws=800, num_burnin=200, step_size=5e-4,
        batch_size=10_000, seed=7, verbose=False,
    )  # fmt: skip
    # singular directions mix slowly at this budget: allow 20% plus the chain spread
    _close(res, truth, bias=0.2 * truth)


def test_vectorised_equals_loop_and_determinism():
    model, data = _regular_problem(n=300)
    kw = dict(num_chains=3, num_draws=50, step_size=5e-4, batch_size=32, paired=True)
    a = estimate_llc(model, NLL, data, seed=11, verbose=False, **kw)
    b = estimate_llc(model, NLL, data, seed=11, verbose=False, **kw)
    c = estimate_llc(model, NLL, data, seed=11, vectorize=False, verbose=False, **kw)
    d = estimate_llc(model, NLL, data, seed=12, verbose=False, **kw)
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert a.llc_mean == b.llc_mean
    np.testing.assert_allclose(a.loss_trace, c.loss_trace, rtol=1e-4, atol=1e-5)
    assert a.llc_mean != d.llc_mean
    # chain groups (bounded memory): deterministic too
    e = estimate_llc(model, NLL, data, seed=11, max_parallel_chains=2, verbose=False, **kw)
    f = estimate_llc(model, NLL, data, seed=11, max_parallel_chains=2, verbose=False, **kw)
    np.testing.assert_array_equal(e.loss_trace, f.loss_trace)
    assert e.loss_trace.shape == (3, 50)


def test_dln_forward_chains_matches_per_chain_forward_and_the_loop():
    """DeepLinearNetwork evaluates all chains with its own bmm chain (forward_chains): the
    same outputs as one forward per chain, and the same chains as the looped estimator."""
    net, data = _dln_problem([4, 3, 5, 2], rank=1, n=300, seed=2)
    gen = torch.Generator().manual_seed(0)
    params = {k: torch.randn(3, *p.shape, generator=gen) for k, p in net.named_parameters()}
    x = torch.randn(3, 7, 4, generator=gen)
    stacked = net.forward_chains(params, x)
    for c in range(3):
        one = torch.func.functional_call(net, {k: v[c] for k, v in params.items()}, (x[c],))
        torch.testing.assert_close(stacked[c], one)
    kw = dict(num_chains=3, num_draws=40, step_size=1e-4, batch_size=32, paired=True, seed=4)
    fast = estimate_llc(net, NLL, data, verbose=False, **kw)
    loop = estimate_llc(net, NLL, data, vectorize=False, verbose=False, **kw)
    np.testing.assert_allclose(fast.loss_trace, loop.loss_trace, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast.delta_trace, loop.delta_trace, rtol=1e-3, atol=1e-5)


def test_compiled_forward_follows_the_eager_chains():
    """compile=True: the same random numbers through a compiled graph, so the chains agree
    with eager ones to float tolerance; another seed moves them far more than that."""
    net, data = _dln_problem([4, 3, 5, 2], rank=1, n=300, seed=2)
    kw = dict(num_chains=3, num_draws=40, step_size=1e-4, batch_size=32, paired=True, seed=4)
    eager = estimate_llc(net, NLL, data, verbose=False, **kw)
    compiled = estimate_llc(net, NLL, data, compile=True, verbose=False, **kw)
    other = estimate_llc(net, NLL, data, verbose=False, **{**kw, "seed": 5})
    np.testing.assert_allclose(compiled.loss_trace, eager.loss_trace, rtol=1e-4, atol=1e-5)
    assert not np.allclose(other.loss_trace, eager.loss_trace, rtol=1e-2)
    assert not any("compile" in w for w in compiled.warnings)
    # frozen parameters are constants of the graph: a second model with other frozen values
    # in the same process must not reuse the first one's
    for seed in (3, 8):
        frozen, frozen_data = _dln_problem([4, 3, 5, 2], rank=1, n=300, seed=seed)
        frozen.layers[1].weight.requires_grad_(False)
        want = estimate_llc(frozen, NLL, frozen_data, verbose=False, **kw)
        got = estimate_llc(frozen, NLL, frozen_data, compile=True, verbose=False, **kw)
        np.testing.assert_allclose(got.loss_trace, want.loss_trace, rtol=1e-4, atol=1e-5)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    """A compiler error is a warning and a note, and the estimate is the eager one."""

    def broken_compile(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler")

        return fail

    net, data = _dln_problem([4, 3, 5, 2], rank=1, n=300, seed=2)
    kw = dict(num_chains=3, num_draws=20, step_size=1e-4, batch_size=32, seed=4, verbose=False)
    eager = estimate_llc(net, NLL, data, **kw)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        fallen = estimate_llc(net, NLL, data, compile=True, **kw)
    np.testing.assert_array_equal(fallen.loss_trace, eager.loss_trace)
    assert sum("torch.compile failed" in w for w in fallen.warnings) == 1


def test_vector_loss_gives_components():
    """A loss_fn returning K per-component losses (e.g. per token): the chains sample the
    mean, and llc_components average back to llc_mean."""
    model, data = _regular_problem(n=300)

    def per_output(pred, target):  # two "tokens": the residual and its negative half
        err = 0.5 * (pred - target).pow(2).mean(0)
        return torch.cat([err, 0.5 * err])

    res = estimate_llc(
        model, per_output, data, num_chains=2, num_draws=100, step_size=5e-4,
        batch_size=10_000, verbose=False,
    )  # fmt: skip
    assert res.llc_components.shape == (2,)
    assert res.llc_components.mean() == pytest.approx(res.llc_mean, rel=1e-6)
    assert res.llc_components[0] == pytest.approx(2 * res.llc_components[1], rel=1e-6)
    # the trace figures' reading: its per-chain mean is each chain's estimate
    assert res.llc_trace.shape == (2, 100)
    assert res.llc_trace.mean(1) == pytest.approx(res.llc_per_chain, rel=1e-9)
    # a given L_n(w*) must match the loss's shape: a scalar for this vector loss is a clear
    # error, not a broadcasting failure in the chains; the computed one, given back, runs
    with pytest.raises(ValueError, match=r"init_loss has shape \(\), but loss_fn returns \(2,\)"):
        estimate_llc(model, per_output, data, num_chains=2, num_draws=2, init_loss=0.0)
    given = estimate_llc(
        model, per_output, data, num_chains=2, num_draws=100, step_size=5e-4,
        batch_size=10_000, verbose=False, init_loss=torch.tensor(res.component_init_loss),
    )  # fmt: skip
    np.testing.assert_allclose(given.llc_components, res.llc_components, rtol=1e-5)


def test_default_nbeta_and_bad_inputs():
    model, data = _regular_problem(n=50)
    assert default_nbeta(1000) == pytest.approx(1000 / math.log(1000))
    with pytest.raises(ValueError, match="at least 2"):
        default_nbeta(1)
    bad = [
        dict(num_chains=0),
        dict(num_draws=0),
        dict(num_burnin=-1),
        dict(step_size=-1e-3),
        dict(step_size=float("nan")),
        dict(nbeta=0.0),
        dict(localization=-1.0),
        dict(batch_size=0),
        dict(sampler="hmc"),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            estimate_llc(model, NLL, data, verbose=False, **kw)
    with pytest.raises(ValueError, match="differ in length"):
        estimate_llc(model, NLL, (data[0], data[1][:10]), verbose=False)
    with pytest.raises(ValueError, match="tuple"):
        estimate_llc(model, NLL, data[0], verbose=False)
    with pytest.raises(ValueError, match="not finite"):
        estimate_llc(model, NLL, (data[0], data[1] * math.inf), verbose=False)
    with pytest.raises(ValueError, match="scalar"):
        estimate_llc(model, lambda p, t: (p - t).pow(2), data, num_draws=2, verbose=False)


def test_all_chains_diverge_raises():
    model, data = _regular_problem(n=100)
    with pytest.raises(LLCDivergenceError, match="lower step_size"):
        estimate_llc(
            model, NLL, data, num_chains=2, num_draws=300, step_size=1.0, batch_size=100,
            verbose=False,
        )  # fmt: skip


def test_some_chains_diverge_are_excluded_and_named():
    model, data = _regular_problem(n=200)
    kw = dict(num_chains=4, num_draws=200, step_size=1e-3, batch_size=200, seed=8)
    ref = estimate_llc(model, NLL, data, verbose=False, **kw)
    peaks = ref.nbeta * (ref.loss_trace.max(1) - ref.init_loss)
    cut = float(np.sort(peaks)[1] + np.sort(peaks)[2]) / 2  # two chains above, two below
    with pytest.warns(RuntimeWarning, match=r"chains \[.*\] of 4 diverged"):
        res = estimate_llc(model, NLL, data, divergence_threshold=cut, verbose=False, **kw)
    assert res.diverged.sum() == 2
    assert np.isnan(res.llc_per_chain[res.diverged]).all()
    assert res.llc_mean == pytest.approx(ref.llc_per_chain[~res.diverged].mean())
    kept = res.llc_trace[~res.diverged]
    assert kept.mean(1) == pytest.approx(res.llc_per_chain[~res.diverged], rel=1e-9)


def test_negative_estimate_is_returned_with_warning():
    model, data = _regular_problem(n=200)
    with torch.no_grad():
        model.bias.add_(1.0)  # w* well off the minimum: chains run downhill
    with pytest.warns(RuntimeWarning, match="negative LLC"):
        res = estimate_llc(
            model, NLL, data, num_chains=2, num_draws=100, step_size=1e-3, batch_size=200,
            verbose=False,
        )  # fmt: skip
    assert res.llc_mean < 0


def test_calibrate_picks_largest_stable_step():
    model, data = _regular_problem(n=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(
            model, NLL, data, step_sizes=[1e-4, 1e-3, 0.5], num_chains=2, num_draws=200,
            num_burnin=50, batch_size=300, mala_every=1,
        )  # fmt: skip
    table = cal.table
    assert list(table["step_size"]) == [1e-4, 1e-3, 0.5]
    assert {"llc_mean", "mala_acceptance", "trace_drift", "stable"} <= set(table.columns)
    assert not table["stable"].iloc[-1]  # 0.5 diverges
    assert cal.best_step_size == 1e-3


def test_sampler_settings_from_config_picks_only_sampler_keys():
    block = {"num_chains": 2, "step_size": 1e-4, "lr": 0.1, "seed": 3, "architectures": {}}
    settings = SamplerSettings.from_config(block, paired=True)
    assert (settings.num_chains, settings.step_size, settings.paired) == (2, 1e-4, True)
    assert settings.num_draws == SamplerSettings().num_draws


# -- SGNHT ---------------------------------------------------------------------------------
def test_sgnht_regular_model():
    model, data = _regular_problem()
    res = estimate_llc(
        model, NLL, data, num_chains=4, num_draws=600, num_burnin=100, step_size=1e-3,
        batch_size=10_000, seed=1, sampler="sgnht", verbose=False,
    )  # fmt: skip
    _close(res, 2.0, bias=0.15 * 2.0)
    assert np.isnan(res.mala_acceptance).all()  # no MALA test for a momentum sampler


def test_sgnht_normal_crossing_and_rrr():
    """The same bands as the SGLD tests above: w1 w2^3 (lambda 1/6) and [3, 2, 3] r1."""
    res = estimate_llc(
        MonomialRegression((1, 3)), gaussian_nll(0.5), monomial_data(1000, seed=4),
        num_chains=4, num_draws=800, num_burnin=100, step_size=1e-3, batch_size=1000,
        seed=5, sampler="sgnht", verbose=False,
    )  # fmt: skip
    assert 0.05 < res.llc_mean < 0.3, res.llc_mean
    widths, rank = [3, 2, 3], 1
    truth = float(dln_learning_coefficient(widths, rank)[0])
    net, data = _dln_problem(widths, rank, seed=6)
    res = estimate_llc(
        net, NLL, data, num_chains=4, num_draws=800, num_burnin=200, step_size=1e-3,
        batch_size=10_000, seed=7, sampler="sgnht", verbose=False,
    )  # fmt: skip
    _close(res, truth, bias=0.25 * truth)


# -- diagnostics and the health verdict -----------------------------------------------------
W2 = dict(num_chains=4, num_burnin=100, batch_size=1000, seed=0, verbose=False)


def _w2(**kw):
    """y = w2 x + N(0, 0.5^2), lambda 1/2: the case whose smoke estimate lands near truth."""
    data = monomial_data(1000, seed=0)
    return estimate_llc(MonomialRegression((0, 1)), gaussian_nll(0.5), data, **{**W2, **kw})


def test_healthy_known_case_lands_near_truth():
    res = _w2(num_draws=600, step_size=5e-4)
    assert res.healthy, res.health_reasons
    assert res.rhat < 1.05 and res.ess_bulk > 300 and res.ess_tail > 300
    assert 0 < res.llc_mcse < 0.1 * res.llc_mean
    assert res.mala_exact and res.mala_acceptance.mean() > 0.9
    assert res.loss_budget == pytest.approx(res.nbeta * 5e-4 * 700)
    assert res.localization_budget == pytest.approx(1.0 * 5e-4 * 700)
    _close(res, 0.5, bias=0.15)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (dict(num_draws=20, num_burnin=0, step_size=5e-4), "R-hat"),  # far too few steps
        (dict(num_draws=600, step_size=1e-6), "equilibration budget"),  # nothing moves
        (dict(num_draws=600, step_size=5e-4, batch_size=32), "MCSE"),  # unpaired minibatches
    ],
)
def test_unhealthy_settings_are_flagged_with_what_to_change(settings, reason):
    with pytest.warns(RuntimeWarning, match="LLC estimate not healthy"):
        res = _w2(**settings)
    assert not res.healthy
    assert any(r.startswith(reason) for r in res.health_reasons), res.health_reasons
    assert abs(res.llc_mean - 0.5) > 0.1 or reason == "R-hat"  # these land off the truth
    row = res.summary_row()
    assert row["healthy"] is False and reason in row["health_reasons"]
    # the trace figures' second title line: every failed check, none of the advice
    checks = [r.split(":")[0] for r in res.health_reasons]
    assert failed_checks(row["health_reasons"]) == ", ".join(checks)
    assert "add " not in failed_checks(row["health_reasons"])
    if settings.get("batch_size") == 32:
        assert not res.mala_exact and "paired=True" in row["health_reasons"]


def test_budget_warning_before_sampling_names_the_fix():
    with pytest.warns(RuntimeWarning, match=r"nbeta \* step_size .* raise step_size or num_burnin"):
        res = _w2(num_draws=50, num_burnin=0, step_size=1e-6)
    assert any("nbeta * step_size" in note for note in res.warnings)


def test_summary_row_has_one_spelling():
    model, data = _regular_problem(n=100)
    res = estimate_llc(model, NLL, data, num_chains=2, num_draws=20, batch_size=100, verbose=False)
    row = res.summary_row()
    assert tuple(row) == ROW_FIELDS
    assert row["diverged_chains"] == 0 and row["num_chains"] == 2
    assert row["mala_acceptance"] == pytest.approx(float(np.nanmean(res.mala_acceptance)))
    prefixed = res.summary_row(prefix="llc_")
    assert prefixed["llc_mean"] == row["llc_mean"] and prefixed["llc_rhat"] == row["rhat"]
    summary = res.summary()
    assert summary["llc_per_chain"] == pytest.approx(list(res.llc_per_chain))


# -- defects fixed on the way ---------------------------------------------------------------
def _reference_acceptance(model, data, *, eps, nbeta, gamma, steps, seed, rmsprop):
    """Textbook (p)SGLD-MALA in float64, written apart from the estimator: one chain, full
    batch, the same noise stream. Returns the mean acceptance of moves 0->1, ..., (D-2)->(D-1)."""
    x, y = (t.double() for t in data)
    w0 = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).double()

    def potential_and_grad(w):
        w = w.clone().requires_grad_(True)
        pred = x @ w[:3, None] + w[3]
        u = nbeta * 0.5 * (pred - y).pow(2).sum(-1).mean() + 0.5 * gamma * (w - w0).pow(2).sum()
        (g,) = torch.autograd.grad(u, w)
        grad_l = (g - gamma * (w - w0)).detach() / nbeta
        return u.detach(), g.detach(), grad_l

    gen = torch.Generator().manual_seed(seed * 1_000_003)
    w, v, states = w0.clone(), None, []
    for _ in range(steps):
        u, drift, grad_l = potential_and_grad(w)
        if rmsprop:
            sq = (nbeta * grad_l) ** 2
            v = sq if v is None else 0.99 * v + 0.01 * sq
            g = 1.0 / (v.sqrt() + 1.0)
        else:
            g = torch.ones_like(w)
        states.append((w, u, drift, g))
        noise = torch.randn((1, 4), generator=gen)[0].double()
        w = w - 0.5 * eps * g * drift + (eps * g).sqrt() * noise

    def log_q(to, frm, drift, g):
        r = to - frm + 0.5 * eps * g * drift
        return float(-(r**2 / g).sum() / (2 * eps) - 0.5 * g.log().sum())

    rates = []
    for (wa, ua, da, ga), (wb, ub, db, gb) in zip(states[:-1], states[1:], strict=True):
        log_ratio = float(ua - ub) + log_q(wa, wb, db, gb) - log_q(wb, wa, da, ga)
        rates.append(min(1.0, math.exp(log_ratio)))
    return float(np.mean(rates))


@pytest.mark.parametrize(("sampler", "eps"), [("sgld", 5e-3), ("rmsprop_sgld", 5e-2)])
def test_mala_acceptance_matches_an_independent_computation(sampler, eps):
    """The RMSprop preconditioner kept for the next MALA check used to be overwritten in
    place by the update (sqrt(eps G) instead of G): acceptance read far too low."""
    model, data = _regular_problem(n=200)
    nbeta = default_nbeta(200)
    res = estimate_llc(
        model, NLL, data, num_chains=1, num_draws=60, step_size=eps, batch_size=200,
        sampler=sampler, mala_every=1, seed=3, verbose=False,
    )  # fmt: skip
    ref = _reference_acceptance(
        model, data, eps=eps, nbeta=nbeta, gamma=1.0, steps=60, seed=3,
        rmsprop=sampler == "rmsprop_sgld",
    )  # fmt: skip
    assert res.mala_acceptance[0] == pytest.approx(ref, abs=2e-3)
    assert ref < 0.995  # a step large enough that a wrong G would show


def test_zero_divergence_threshold_is_a_threshold():
    """0 used to read as "unset" (``threshold or default``): now every chain whose loss
    ever rises above L(w*) diverges, which all of them do."""
    model, data = _regular_problem(n=100)
    kw = dict(num_chains=2, num_draws=50, batch_size=100, verbose=False)
    with pytest.raises(LLCDivergenceError) as err:
        estimate_llc(model, NLL, data, divergence_threshold=0.0, **kw)
    assert err.value.result.diverged.all()
    with pytest.raises(ValueError, match="divergence_threshold"):
        estimate_llc(model, NLL, data, divergence_threshold=-1.0, **kw)


def test_all_diverged_error_carries_the_result():
    model, data = _regular_problem(n=100)
    with pytest.raises(LLCDivergenceError) as err:
        estimate_llc(
            model, NLL, data, num_chains=2, num_draws=300, step_size=1.0, batch_size=100,
            verbose=False,
        )  # fmt: skip
    result = err.value.result
    row = result.summary_row()
    assert math.isnan(row["llc_mean"]) and row["diverged_chains"] == 2
    assert not row["healthy"] and "2 of 2 chains diverged" in row["health_reasons"]


def test_settings_are_validated_once_and_frozen():
    with pytest.raises(ValueError, match="num_chains"):
        SamplerSettings(num_chains=0)
    with pytest.raises(ValueError, match="step_size"):
        SamplerSettings(step_size=math.inf)
    with pytest.raises(ValueError, match="sampler"):
        SamplerSettings(sampler="hmc")
    with pytest.raises(ValueError, match="unknown sampler settings"):
        SamplerSettings().replace(learning_rate=1e-3)
    settings = SamplerSettings(num_chains=2)
    with pytest.raises(AttributeError):
        settings.num_chains = 3
    assert settings.replace(num_chains=3).num_chains == 3 and settings.num_chains == 2


class _NoVmap(torch.nn.Linear):
    """A model vmap cannot batch (data-dependent Python control flow)."""

    def forward(self, x):
        out = super().forward(x)
        return out if float(out.detach().sum()) > -math.inf else -out


def test_forward_chosen_once_falls_back_to_the_loop():
    model, data = _regular_problem(n=100)
    loopy = _NoVmap(3, 1)
    loopy.load_state_dict(model.state_dict())
    kw = dict(num_chains=2, num_draws=30, batch_size=16, seed=2, verbose=False)
    with pytest.warns(RuntimeWarning, match="vmap over chains failed"):
        fallback = estimate_llc(loopy, NLL, data, **kw)
    loop = estimate_llc(loopy, NLL, data, vectorize=False, **kw)
    np.testing.assert_array_equal(fallback.loss_trace, loop.loss_trace)


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"num_chains": 0}, "num_chains"),
        ({"stepsize": 1e-3}, "stepsize"),
        ({"sampler": "x"}, "sampler"),
    ],
)
def test_paper_sampler_blocks_use_the_one_schema(bad, key):
    from sltrepro.config import ConfigError, load_profile, read_yaml, validate_block
    from sltrepro.paths import paper_dir

    schema = read_yaml(paper_dir("llc_estimator") / "config.schema.yaml")
    assert schema["properties"]["sampler"]["$ref"] == "urn:sltrepro:sampler"
    block = load_profile("llc_estimator", "smoke")
    SamplerSettings.from_config(block["sampler"])  # a valid block is a valid settings object
    with pytest.raises(ConfigError, match=key):
        validate_block({**block, "sampler": {**block["sampler"], **bad}}, schema, where="test")
