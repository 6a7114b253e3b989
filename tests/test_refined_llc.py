"""The weight-refined LLC (``restrict=``): known restricted learning coefficients, frozen
coordinates that never move, equivalence with freezing whole tensors, bad masks, head masks.

Tolerances are tests/test_llc.py's ``_close``: |mean - lambda| within a stated bias allowance
plus 3 s / sqrt(chains), s the chains' measured spread in the same run.
"""

import math

import numpy as np
import pytest
import torch
from test_llc import NLL, _close  # the same band as every known-lambda test

from sltrepro.llc import estimate_llc, estimate_llc_trajectory
from sltrepro.models.attn_lm import AttnOnlyLM, head_mask
from sltrepro.models.dln import DeepLinearNetwork
from sltrepro.theory import dln_learning_coefficient, regular_lambda

pytestmark = pytest.mark.usefixtures("one_thread")


def _well_conditioned(rows, cols, gen):
    """A generic full-rank (rows, cols) matrix with singular values in [0.8, 1.2], so the
    curvatures of the restricted loss stay within a factor ~2 of each other (fast mixing)."""
    k = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.linspace(0.8, 1.2, k, dtype=torch.float64)
    return (u * s) @ v.T


def _frozen_dln(widths, rows, n=1000, seed=0):
    """A 3-layer DLN W3 W2 W1 at a generic full-rank point; the data are the network plus
    unit Gaussian noise. ``rows`` of the middle layer W2 are free: they are set to their
    least-squares fit given everything else (the minimum of the restricted empirical loss,
    min-norm where the fit is not unique). Returns the net, the data, the restrict masks
    and the restricted map's matrix (the design of vec W2[rows] -> outputs)."""
    gen = torch.Generator().manual_seed(seed)
    w1, w2, w3 = (_well_conditioned(b, a, gen) for a, b in zip(widths, widths[1:], strict=False))
    # the columns of W3 that read the free rows, well conditioned by themselves too
    w3[:, rows] = _well_conditioned(widths[-1], len(rows), gen)
    x = torch.randn(n, widths[0], generator=gen, dtype=torch.float64)
    y = x @ (w3 @ w2 @ w1).T + torch.randn(n, widths[-1], generator=gen, dtype=torch.float64)
    free = torch.zeros(w2.shape, dtype=torch.bool)
    free[rows] = True
    z = x @ w1.T  # (n, H2): what W2 reads
    fixed = z @ (w2 * ~free).T @ w3.T
    a = w3[:, rows]  # (out, |rows|): how the free rows reach the output
    design = torch.einsum("oa,ib->ioab", a, z).reshape(n * widths[-1], -1)
    fit = torch.linalg.pinv(design) @ (y - fixed).reshape(-1)
    w2 = w2.clone()
    w2[rows] = fit.view(len(rows), -1)
    net = DeepLinearNetwork.from_weights([w.float() for w in (w1, w2, w3)])
    masks = {"layers.1.weight": free}
    return net, (x.float(), y.float()), masks, torch.kron(a.contiguous(), w1.T.contiguous())


RESTRICTED = dict(
    num_chains=8, num_draws=800, num_burnin=300, step_size=5e-4, batch_size=10_000, seed=3
)


@pytest.mark.parametrize(
    ("widths", "rows"),
    [
        ([4, 3, 2, 4], [0, 1]),  # the whole middle layer, identifiable: lambda = d_free / 2
        ([4, 3, 5, 2], [0, 1, 2, 3]),  # 4 of its 5 rows; only 2 outputs read them
    ],
)
def test_restricted_dln_reads_the_restricted_models_lambda(widths, rows):
    """With W1 (H2 x H1) and W3 (H4 x H3) frozen at a generic full-rank point, the free rows
    S of W2 enter linearly: f(x) = W3[:, S] W2[S] W1 x + const, so K(W2[S]) is the quadratic
    form (1/2) E|W3[:, S] D W1 x|^2 in D = W2[S] - W2*[S]. With E[x x^T] = I its rank is that
    of the map D -> W3[:, S] D W1, rank(W3[:, S]) * rank(W1) = min(H4, |S|) * min(H2, H1).
    The model is regular on the quotient by the map's kernel and exactly flat along the
    kernel (which contributes nothing to the volume scaling), so lambda = that rank / 2.

    - [4, 3, 2, 4], S = both rows: rank 2 * 3 = 6 = d_free, lambda = 3; the unrestricted
      network's Aoyagi lambda is 6, which the band must exclude.
    - [4, 3, 5, 2], S = 4 rows: 12 free weights, but W3[:, S] is 2 x 4 (rank 2), so 6 of the
      12 directions are unidentifiable: lambda = 3, not the naive d_free / 2 = 6 (excluded),
      and not the unrestricted Aoyagi value 4 (excluded).
    """
    net, data, masks, restricted_map = _frozen_dln(widths, rows)
    d_free = len(rows) * widths[1]
    rank = min(widths[-1], len(rows)) * min(widths[1], widths[0])
    assert int(torch.linalg.matrix_rank(restricted_map)) == rank  # the derivation's rank
    truth = float(regular_lambda(rank)[0])
    res = estimate_llc(net, NLL, data, restrict=masks, verbose=False, **RESTRICTED)
    assert res.num_params == d_free and res.healthy, res.health_reasons
    # measured on 5 seeds (data seeds 0-3 sampled with the same seed, and this one): 2.85-2.99
    # (first case) and 2.86-3.17 (second) for lambda 3, chain std 0.19-0.44 over 8 chains;
    # SGLD at eps * nbeta * curvature <= 0.15 reads within a few percent
    allowance = _close(res, truth, bias=0.1 * truth)
    aoyagi = float(dln_learning_coefficient(widths, min(widths))[0])
    for null in {aoyagi, d_free / 2} - {truth}:
        assert abs(res.llc_mean - null) > allowance, f"the band around {truth} holds {null}"


def test_restriction_changes_the_answer():
    """The same point and sampler unrestricted: the full network's estimate sits at Aoyagi's
    lambda (6 for [4, 3, 2, 4] at rank 2), above the restricted band around 3."""
    widths = [4, 3, 2, 4]
    net, data, masks, _ = _frozen_dln(widths, [0, 1])
    aoyagi = float(dln_learning_coefficient(widths, 2)[0])
    full = estimate_llc(net, NLL, data, verbose=False, **RESTRICTED)
    part = estimate_llc(net, NLL, data, restrict=masks, verbose=False, **RESTRICTED)
    assert full.num_params == net.num_params() == 26 and part.num_params == 6
    # w* minimises the restricted loss only; the full net's slow singular directions mix
    # slowly: 20% as in tests/test_llc.py::test_dln_rrr_against_aoyagi (measured 6.20)
    _close(full, aoyagi, bias=0.2 * aoyagi)
    top = part.llc_mean + 3 * part.llc_std / math.sqrt(part.num_chains)
    bottom = full.llc_mean - 3 * full.llc_std / math.sqrt(full.num_chains)
    assert top < bottom, (part.llc_mean, full.llc_mean)


class _Recording(torch.nn.Module):
    """A linear model that records the parameters every evaluation saw (loop forward only)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.cat([self.lin.weight.detach().reshape(-1), self.lin.bias.detach()]))
        return self.lin(x)


def _linear_data(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    return x, x @ torch.randn(3, 2, generator=gen) + torch.randn(n, 2, generator=gen)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # short runs: health is not the point
@pytest.mark.parametrize("sampler", ["sgld", "rmsprop_sgld", "sgnht"])
def test_masked_out_coordinates_never_move(sampler):
    """Every evaluation, minibatch or MALA check sees the masked-out weights at w* exactly
    (no drift, noise or tether moves them); the selected ones do move."""
    model = _Recording()
    w_star = torch.cat([model.lin.weight.detach().reshape(-1), model.lin.bias.detach()])
    weight = torch.zeros(2, 3, dtype=torch.bool)
    weight[0, 1:] = True  # a slice of one tensor; the bias is not named, so it is held too
    estimate_llc(
        model, NLL, _linear_data(), restrict={"lin.weight": weight}, num_chains=2,
        num_draws=30, step_size=1e-3, batch_size=16, paired=True, vectorize=False,
        sampler=sampler, mala_every=1, seed=1, verbose=False,
    )  # fmt: skip
    seen = torch.stack(model.seen)
    selected = torch.cat([weight.reshape(-1), torch.zeros(2, dtype=torch.bool)])
    assert len(seen) == 1 + 2 * 2 * 30  # L(w*), then each step's chains and paired w*
    assert torch.equal(seen[:, ~selected], w_star[~selected].expand(len(seen), -1))
    # every chain evaluation after the first step is off w* in every selected coordinate
    assert (seen[:, selected] != w_star[selected]).all(1).sum() == 2 * 29


ULPS = 1e-5  # relative: float32 rounding of a different summation order, not a change


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # short runs: health is not the point
@pytest.mark.parametrize("sampler", ["sgld", "rmsprop_sgld", "sgnht"])
def test_whole_tensor_mask_equals_freezing_it_and_full_mask_equals_none(sampler):
    """Selecting whole tensors is freezing the others (requires_grad=False): the same chains,
    traces, MALA rates and dimension counts. Selecting everything is no restriction. "The
    same" is up to float32 rounding (a few ulps: the two paths sum the update in different
    kernels, which AVX-512 and AVX2 round differently); a coordinate that moved when it
    should not would differ by orders of magnitude more."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, generator=gen)
    y = torch.tanh(x @ torch.randn(3, 1, generator=gen)) + torch.randn(300, 1, generator=gen)
    data = (x, y)

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))

    kw = dict(num_chains=3, num_draws=40, step_size=1e-3, batch_size=32, sampler=sampler,
              mala_every=2, seed=5, verbose=False)  # fmt: skip
    model = net()
    first = {k: torch.ones_like(p, dtype=torch.bool) for k, p in model.named_parameters()
             if k.startswith("0.")}  # fmt: skip
    masked = estimate_llc(model, NLL, data, restrict=first, **kw)
    frozen_model = net()
    frozen_model[2].requires_grad_(False)
    frozen = estimate_llc(frozen_model, NLL, data, **kw)
    np.testing.assert_allclose(masked.loss_trace, frozen.loss_trace, rtol=ULPS, atol=0)
    np.testing.assert_allclose(masked.mala_acceptance, frozen.mala_acceptance, rtol=ULPS, atol=0)
    assert masked.num_params == frozen.num_params == 16
    everything = {k: torch.ones_like(p, dtype=torch.bool) for k, p in model.named_parameters()}
    full = estimate_llc(model, NLL, data, restrict=everything, **kw)
    plain = estimate_llc(model, NLL, data, **kw)
    np.testing.assert_allclose(full.loss_trace, plain.loss_trace, rtol=ULPS, atol=0)
    assert full.num_params == plain.num_params == 21


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # short runs: health is not the point
def test_trajectory_restricts_every_checkpoint():
    """Checkpoints stacked in one run equal separate restricted calls, so each checkpoint's
    held weights sit at its own w* (the two checkpoints differ in every weight)."""
    model, data = _Recording(), _linear_data()
    states = []
    for scale in (1.0, 0.5):
        states.append({k: v.detach() * scale for k, v in model.state_dict().items()})
    weight = torch.zeros(2, 3, dtype=torch.bool)
    weight[1] = True
    kw = dict(num_chains=2, num_draws=30, step_size=1e-3, batch_size=16, seed=4, verbose=False)
    both = estimate_llc_trajectory(model, states, NLL, data, restrict={"lin.weight": weight}, **kw)
    for state, res in zip(states, both, strict=True):
        alone = _Recording()
        alone.load_state_dict(state)
        one = estimate_llc(alone, NLL, data, restrict={"lin.weight": weight}, **kw)
        np.testing.assert_allclose(res.loss_trace, one.loss_trace, rtol=1e-5)
        assert res.num_params == 3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # short runs: health is not the point
def test_bad_masks_get_clear_errors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    model[1].bias.requires_grad_(False)
    data = _linear_data()
    data = (data[0], data[1][:, :1])
    ok = torch.ones(4, 3, dtype=torch.bool)
    cases = [
        ({"0.wieght": ok}, "'0.wieght' is unknown"),
        ({"1.bias": torch.ones(1, dtype=torch.bool)}, "'1.bias' is frozen"),
        ({"0.weight": ok.T}, r"shape \(3, 4\), the parameter \(4, 3\)"),
        ({"0.weight": torch.ones(4, 3)}, "must be a bool tensor, got torch.float32"),
        ({"0.weight": torch.zeros(4, 3, dtype=torch.bool)}, "select no parameter"),
        ({}, "non-empty mapping"),
    ]  # fmt: skip
    for restrict, message in cases:
        with pytest.raises(ValueError, match=message):
            estimate_llc(model, NLL, data, restrict=restrict, num_draws=5, verbose=False)


def test_head_mask_selects_exactly_one_heads_weights():
    """4 * d_head * d_model weights per head; a layer's heads partition its attention weights;
    changing a head's query/key rows changes its own attention pattern and no other head's,
    changing the layer's other rows leaves its pattern alone; its out columns carry the
    output of its value rows."""
    d_model, heads, d_head = 12, 3, 4
    model = AttnOnlyLM(17, d_model=d_model, n_heads=heads, d_head=d_head, context=8)
    tokens = torch.randint(17, (5, 8), generator=torch.Generator().manual_seed(0))
    _, before = model.run(tokens)
    union = None
    for h in range(heads):
        masks = head_mask(model, 1, h)
        assert sum(int(m.sum()) for m in masks.values()) == 4 * d_head * d_model
        union = masks if union is None else {k: union[k] ^ masks[k] for k in masks}
    assert all(m.all() for m in union.values())  # xor over heads: each weight exactly once
    qkv = model.blocks[1].qkv.weight
    mine = head_mask(model, 1, 2)["blocks.1.qkv.weight"]
    kick = torch.randn(qkv.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        qkv.add_(torch.where(mine, kick, 0.0))
        _, moved = model.run(tokens)
        qkv.add_(torch.where(mine, -kick, kick))
        _, others = model.run(tokens)
    changed = (moved[1] - before[1]).abs().amax((0, 2, 3))
    assert changed[2] > 1e-2 and changed[:2].max() < 1e-6, changed
    assert torch.equal(moved[0], before[0])
    assert (others[1][:, 2] - before[1][:, 2]).abs().max() < 1e-6
    # the out columns read the same head: zeroing them removes what zeroing its values does
    model = AttnOnlyLM(17, d_model=d_model, n_heads=heads, d_head=d_head, context=8)
    masks = head_mask(model, 1, 2)
    values = masks["blocks.1.qkv.weight"].clone()
    values[: 2 * heads * d_head] = False
    ablated = []
    for name, mask in (
        ("blocks.1.qkv.weight", values),
        ("blocks.1.out.weight", masks["blocks.1.out.weight"]),
    ):
        copy = AttnOnlyLM(17, d_model=d_model, n_heads=heads, d_head=d_head, context=8)
        copy.load_state_dict(model.state_dict())
        with torch.no_grad():
            copy.get_parameter(name).masked_fill_(mask, 0.0)
            ablated.append(copy(tokens))
    torch.testing.assert_close(ablated[0], ablated[1])
    assert (ablated[0] - model(tokens)).abs().max() > 1e-3
    for bad in ((2, 0), (0, 3)):
        with pytest.raises(ValueError, match="out of range"):
            head_mask(model, *bad)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # short runs: health is not the point
def test_head_mask_restricts_an_lm_estimate():
    """A head of the LM through the estimator: only its 4 * d_head * d_model weights sampled."""
    model = AttnOnlyLM(11, d_model=8, n_heads=2, d_head=4, context=6)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(11, (64, 6), generator=gen), torch.randint(11, (64, 6), generator=gen)

    def loss(logits, targets):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))

    res = estimate_llc(
        model, loss, (x, y), restrict=head_mask(model, 0, 1), num_chains=2, num_draws=10,
        step_size=1e-4, batch_size=8, verbose=False,
    )  # fmt: skip
    assert res.num_params == 4 * 4 * 8 and np.isfinite(res.llc_mean)
