"""estimate_llc_trajectory against K separate estimate_llc calls with the same seeds.

Each checkpoint of a trajectory draws its minibatches and noise from its own generator,
seeded as its own call seeds it, so its numbers equal those of the separate call: traces,
per-chain estimates, divergence flags, MALA rates, diagnostics, warnings. Most checks
compare bit for bit (``assert_array_equal``), on every forward strategy (the model's
``forward_chains``, vmap, the loop), every sampler, minibatches (plain and paired), full
batch, a vector loss, chain groups, and checkpoints whose chains partly or all diverge.

The one exception, and why: MKL's batched GEMM (torch's CPU ``bmm``) can round a matrix
product differently depending on the matrix's position in the batch (measured here, AVX2:
the result of batch item i depends on i mod 4 for transposed operands). A checkpoint's
chains sit at rows k*C ... in the stacked batch but at rows 0 ... C-1 in its own call, so
with C a multiple of 4 the positions agree mod 4 and the numbers are bit-identical; with
other C (3 below) each step's gradient may differ in the last float32 bit, and the chains,
driven by the same noise, stay within float32 rounding of each other: that case is
checked to ``rtol = 1e-5`` (the relative difference measured is ~3e-8 after 50 steps).
"""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sltrepro.llc import (
    LLCDivergenceError,
    SamplerSettings,
    estimate_llc,
    estimate_llc_trajectory,
)
from sltrepro.models.dln import DeepLinearNetwork

pytestmark = pytest.mark.usefixtures("one_thread")


def mse(pred, target):
    return 0.5 * (pred - target).pow(2).sum(-1).mean()


def mse_by_output(pred, target):
    """(K,) one loss component per output coordinate."""
    return 0.5 * (pred - target).pow(2).mean(0)


def _dln_checkpoints(k=3, widths=(3, 4, 4, 2), scales=None, n=200, seed=0):
    """K DLNs along a fake training run (different weights, same shapes) and their data."""
    gen = torch.Generator().manual_seed(seed)
    teacher = DeepLinearNetwork(list(widths))
    nets = []
    for i in range(k):
        net = DeepLinearNetwork(list(widths))
        scale = 0.5 if scales is None else scales[i]
        with torch.no_grad():
            for layer in net.layers:
                layer.weight.copy_(scale * torch.randn(layer.weight.shape, generator=gen))
        nets.append(net)
    x = torch.randn(n, widths[0], generator=gen)
    with torch.no_grad():
        y = teacher(x) + 0.1 * torch.randn(n, widths[-1], generator=gen)
    return nets, (x, y)


def _mlp_checkpoints(k=3, n=200, seed=0):
    """A tanh MLP (no forward_chains: vmap) at K different w*."""
    gen = torch.Generator().manual_seed(seed)
    nets = []
    for _ in range(k):
        net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        nets.append(net)
    x = torch.randn(n, 3, generator=gen)
    y = torch.randn(n, 2, generator=gen)
    return nets, (x, y)


def _fields(result):
    row = result.summary_row()
    row.pop("seconds")
    return row


def assert_same(traj, single, rtol=None):
    """Every number of the two results equal (NaN equal to NaN), except the wall time;
    with ``rtol``, floats equal to that relative tolerance and the warnings' text (which
    quotes rounded numbers) unchecked."""
    for name in (
        "llc_per_chain",
        "loss_trace",
        "delta_trace",
        "mala_acceptance",
        "diverged",
        "llc_components",
        "component_init_loss",
    ):
        a, b = getattr(traj, name), getattr(single, name)
        if a is None or b is None:
            assert a is None and b is None, name
        elif rtol is None or a.dtype == bool:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=name)
    ta, tb = _fields(traj), _fields(single)
    assert ta.keys() == tb.keys()
    for key in ta:
        a, b = ta[key], tb[key]
        same = a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
        if rtol is not None and isinstance(a, float) and not same:
            same = math.isclose(a, b, rel_tol=rtol)
        if rtol is not None and key == "health_reasons":
            same = bool(a) == bool(b)
        assert same, f"{key}: trajectory {a!r} vs separate {b!r}"
    if rtol is None:
        assert traj.warnings == single.warnings


def _separate(nets, loss_fn, data, settings, seeds):
    out = []
    for net, seed in zip(nets, seeds, strict=True):
        try:
            out.append(estimate_llc(net, loss_fn, data, settings, seed=seed, device="cpu"))
        except LLCDivergenceError as err:
            out.append(err.result)
    return out


def _compare(nets, loss_fn, data, settings, seeds, model=None, rtol=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        singles = _separate(nets, loss_fn, data, settings, seeds)
        trajectory = estimate_llc_trajectory(
            model, nets, loss_fn, data, settings, seed=seeds, device="cpu", verbose=False
        )
    assert len(trajectory) == len(nets)
    for traj, single in zip(trajectory, singles, strict=True):
        assert_same(traj, single, rtol)
    return trajectory


BASE = SamplerSettings(num_chains=4, num_draws=40, num_burnin=10, step_size=1e-3, batch_size=32)


@pytest.mark.parametrize("sampler", ["sgld", "rmsprop_sgld", "sgnht"])
@pytest.mark.parametrize("paired", [False, True])
def test_dln_minibatches_equal_separate_calls(sampler, paired):
    """forward_chains path, minibatches, per-checkpoint seeds and w*."""
    nets, data = _dln_checkpoints()
    settings = BASE.replace(sampler=sampler, paired=paired, mala_every=5)
    results = _compare(nets, mse, data, settings, seeds=[3, 11, 7])
    # the checkpoints really differ: their own w* and L_n(w*), not one shared
    assert len({r.init_loss for r in results}) == 3


@pytest.mark.parametrize("vectorize", [None, False])
def test_vmap_and_loop_vector_loss_equal_separate_calls(vectorize):
    nets, data = _mlp_checkpoints()
    settings = BASE.replace(vectorize=vectorize, paired=True)
    results = _compare(nets, mse_by_output, data, settings, seeds=[0, 1, 2])
    assert results[0].llc_components.shape == (2,)


def test_chains_not_a_multiple_of_four_agree_to_rounding():
    """3 chains a checkpoint: batched GEMM rounds by batch position (module docstring)."""
    nets, data = _mlp_checkpoints()
    _compare(nets, mse_by_output, data, BASE.replace(num_chains=3), seeds=[0, 1, 2], rtol=1e-5)


def test_full_batch_one_seed_and_chain_groups():
    """Full-batch Langevin (exact MALA), one int seed for all, chains in groups of 4, 4, 2."""
    nets, data = _mlp_checkpoints(k=2, n=50)
    settings = BASE.replace(batch_size=10_000, num_chains=10, max_parallel_chains=4)
    _compare(nets, mse, data, settings, seeds=[4, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        by_int = estimate_llc_trajectory(None, nets, mse, data, settings, seed=4, verbose=False)
        by_list = estimate_llc_trajectory(
            None, nets, mse, data, settings, seed=[4, 4], verbose=False
        )
    for a, b in zip(by_int, by_list, strict=True):
        assert_same(a, b)


def test_checkpoints_stacked_in_groups_equal_separate_calls():
    """max_stacked_checkpoints=2 over 3 checkpoints (groups of 2 and 1) gives the numbers of
    separate calls, as the whole stack does; a bad group size says so."""
    nets, data = _dln_checkpoints()
    seeds = [3, 11, 7]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        singles = _separate(nets, mse, data, BASE, seeds)
        grouped = estimate_llc_trajectory(
            None, nets, mse, data, BASE, seed=seeds, verbose=False, max_stacked_checkpoints=2
        )
    for traj, single in zip(grouped, singles, strict=True):
        assert_same(traj, single)
    with pytest.raises(ValueError, match="max_stacked_checkpoints"):
        estimate_llc_trajectory(None, nets, mse, data, BASE, max_stacked_checkpoints=0)


def test_state_dicts_with_a_template_model():
    nets, data = _dln_checkpoints()
    template = DeepLinearNetwork([3, 4, 4, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        states = [net.state_dict() for net in nets]
        results = estimate_llc_trajectory(template, states, mse, data, BASE, seed=5, verbose=False)
        singles = _separate(nets, mse, data, BASE, [5, 5, 5])
    for traj, single in zip(results, singles, strict=True):
        assert_same(traj, single)


def test_diverged_chains_and_a_diverged_checkpoint():
    """Checkpoints 0 and 1 with some chains diverged (1 by construction), 2 with all
    diverged (its own run stops after 100 steps): each equals its separate call; the call
    raises after all ran, with every result attached."""
    nets, data = _dln_checkpoints(scales=[0.3, 0.3, 30.0], n=400)
    # Between checkpoint 1's chains' worst excursions: some cross the threshold, some not
    settings = BASE.replace(num_chains=8, num_draws=250, num_burnin=0, step_size=3e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        probe = estimate_llc(nets[1], mse, data, settings, seed=2, device="cpu")
    worst = np.sort((probe.loss_trace - probe.init_loss).max(1) * probe.nbeta)
    threshold = float(0.5 * (worst[3] + worst[4]))
    settings = settings.replace(divergence_threshold=threshold)
    seeds = [1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        singles = _separate(nets, mse, data, settings, seeds)
        with pytest.raises(LLCDivergenceError, match=r"checkpoints \[2\] of 3") as info:
            estimate_llc_trajectory(None, nets, mse, data, settings, seed=seeds, verbose=False)
    assert not singles[0].diverged.all()
    assert 0 < singles[1].diverged.sum() < 8
    assert singles[2].diverged.all()
    # the all-diverged run stopped early: its trace ends in never-written zeros
    assert (singles[2].loss_trace[:, -1] == 0).all()
    results = info.value.results
    assert info.value.result is results[2]
    for traj, single in zip(results, singles, strict=True):
        assert_same(traj, single)


def test_mismatched_checkpoints_are_clear_errors():
    nets, data = _dln_checkpoints(k=2)
    other = DeepLinearNetwork([3, 5, 4, 2])
    with pytest.raises(ValueError, match=r"checkpoint 1: parameter 'layers.0.weight' is \(\(5,"):
        estimate_llc_trajectory(None, [nets[0], other], mse, data, BASE, verbose=False)
    wrong_depth = DeepLinearNetwork([3, 4, 2])
    with pytest.raises(ValueError, match="checkpoint 1: trainable parameters"):
        estimate_llc_trajectory(None, [nets[0], wrong_depth], mse, data, BASE, verbose=False)
    state = nets[1].state_dict()
    del state["layers.2.weight"]
    with pytest.raises(ValueError, match=r"checkpoint 1: state dict lacks .*layers.2.weight"):
        estimate_llc_trajectory(nets[0], [nets[0], state], mse, data, BASE, verbose=False)
    half = {k: v.half() for k, v in nets[1].state_dict().items()}
    with pytest.raises(ValueError, match="checkpoint 0: parameter 'layers.0.weight'"):
        estimate_llc_trajectory(nets[0], [half], mse, data, BASE, verbose=False)
    with pytest.raises(ValueError, match="2 seeds for 3 checkpoints"):
        estimate_llc_trajectory(None, nets + [nets[0]], mse, data, BASE, seed=[1, 2])
    with pytest.raises(ValueError, match="needs modules"):
        estimate_llc_trajectory(None, [state], mse, data, BASE)
    with pytest.raises(ValueError, match="no checkpoints"):
        estimate_llc_trajectory(nets[0], [], mse, data, BASE)


def test_differing_buffers_are_a_clear_error():
    """Buffers are shared by every chain: checkpoints that differ in one cannot stack."""
    nets = [nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).eval() for _ in range(2)]
    with torch.no_grad():
        nets[1][1].running_mean.fill_(1.0)
    data = (torch.randn(50, 3), torch.randn(50, 2))
    with pytest.raises(ValueError, match="checkpoint 1: frozen parameter or buffer '1.running"):
        estimate_llc_trajectory(None, nets, mse, data, BASE, verbose=False)
