"""Stage detection and essential dynamics on synthetic curves with known critical points."""

import numpy as np
import pytest

from sltrepro.stages import (
    boundaries,
    detect_stages,
    essential_dynamics,
    match_to_checkpoints,
    random_walk_match_fractions,
    stage_string,
    turning_points,
)

WIDTH = 0.25  # log-steps; every sigmoid step of the synthetic LLC has this width


def checkpoint_steps(last=500_000, n=100):
    """The paper's schedule: union of n log-spaced and n linear steps (integers)."""
    log = np.unique(np.round(np.logspace(0, np.log10(last), n)))
    lin = np.round(np.linspace(0, last, n))
    return np.unique(np.concatenate([log, lin])).astype(int)


def sigmoid_curve(x, jumps):
    """Sum of sigmoid steps: jumps = [(centre in log-steps, height), ...]."""
    return sum(h / (1 + np.exp(-(x - c) / WIDTH)) for c, h in jumps)


# Rises at 2 and 6.5 (a plateau between), a peak, a fall in two parts (a plateau in it),
# a valley, a last rise: the paper's A, A, B, B, A.
PAPER_LIKE = [(2.0, 20.0), (6.5, 150.0), (9.5, -30.0), (11.3, -40.0), (12.5, 15.0)]


def true_critical_points(jumps, grid):
    """Independent reference: extremum / flattest point of the exact slope between jumps."""
    slope = np.gradient(sigmoid_curve(grid, jumps), grid)
    out = []
    centres = [c for c, _ in jumps]
    for c1, c2 in zip(centres[:-1], centres[1:], strict=True):
        inside = (grid > c1) & (grid < c2)
        # a peak/valley (heights of opposite sign) or a plateau (same sign): the flattest point
        out.append(grid[inside][np.argmin(np.abs(slope[inside]))])
    return np.array(out)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_paper_like_curve_gives_AABBA_at_the_right_places(noise):
    steps = checkpoint_steps()
    x = np.log1p(steps)
    rng = np.random.default_rng(0)
    llc = sigmoid_curve(x, PAPER_LIKE) + noise * rng.standard_normal(len(x))
    stages, fit = detect_stages(steps, llc)
    assert stage_string(stages) == "AABBA"
    found = np.log1p(boundaries(stages))
    expected = true_critical_points(PAPER_LIKE, np.linspace(0, x[-1], 20001))
    # within 2 sigmoid widths in log time (x1.6 in steps either way)
    np.testing.assert_allclose(found, expected, atol=2 * WIDTH)
    assert stages[0].start == pytest.approx(0.0, abs=1e-6)
    assert stages[-1].end == pytest.approx(steps[-1], rel=1e-6)
    assert fit.mean.shape == fit.slope.shape == fit.log_steps.shape


def test_flat_noisy_curve_has_one_stage():
    steps = checkpoint_steps(last=20_000, n=40)
    rng = np.random.default_rng(1)
    llc = 50 + 0.5 * rng.standard_normal(len(steps))
    stages, _ = detect_stages(steps, llc)
    assert len(stages) == 1


def test_single_peak_is_A_then_B():
    steps = checkpoint_steps(last=10_000, n=50)
    x = np.log1p(steps)
    llc = 100 * np.exp(-((x - 5.0) ** 2) / 2)
    stages, _ = detect_stages(steps, llc)
    assert stage_string(stages) == "AB"
    assert np.log1p(stages[0].end) == pytest.approx(5.0, abs=0.2)
    assert stages[0].llc_end > stages[0].llc_start and stages[1].llc_end < stages[1].llc_start


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="increasing"):
        detect_stages([0, 10, 5, 20], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="finite"):
        detect_stages([0, 1, 2, 3], [1, np.nan, 3, 4])


def test_essential_dynamics_recovers_a_planted_path_and_its_turn():
    """Outputs move along direction u until step ~ e^5, then along v: one turning point."""
    steps = checkpoint_steps(last=20_000, n=60)
    x = np.log1p(steps)
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, 300))
    along_u = np.minimum(x, 5.0)
    along_v = np.maximum(x - 5.0, 0.0) * np.sin(np.clip(x - 5.0, 0, None))
    # a path that goes out along u, then swings along v and back
    back = np.where(x > 5.0, -(x - 5.0), 0.0)
    outputs = np.outer(along_u + back, u) + np.outer(along_v, v)
    outputs += 0.01 * rng.standard_normal(outputs.shape)
    ed = essential_dynamics(outputs.reshape(len(x), 30, 10), n_components=3)
    assert ed.coords.shape == (len(x), 3)
    assert ed.explained_variance_ratio[:2].sum() > 0.99
    turns = turning_points(steps, ed.coords[:, :2])
    assert any(abs(x[t] - 5.0) < 0.3 for t in turns)
    matches = match_to_checkpoints([np.expm1(5.0), np.expm1(1.0)], steps[turns], steps)
    assert matches == [True, False]


def test_turning_points_ignore_noise():
    steps = checkpoint_steps(last=20_000, n=60)
    rng = np.random.default_rng(3)
    coords = np.log1p(steps)[:, None] + 0.01 * rng.standard_normal((len(steps), 1))
    assert turning_points(steps, coords) == []  # a monotone path with small noise


def test_known_standard_errors_are_used_and_checked():
    steps = checkpoint_steps()
    x = np.log1p(steps)
    rng = np.random.default_rng(4)
    sem = np.full(len(x), 2.0)
    llc = sigmoid_curve(x, PAPER_LIKE) + sem * rng.standard_normal(len(x))
    stages, fit = detect_stages(steps, llc, llc_sem=sem)
    assert stage_string(stages) == "AABBA"
    assert fit.noise_std >= 2.0  # the median standard error sets the smallest stage
    with pytest.raises(ValueError, match="llc_sem"):
        detect_stages(steps, llc, llc_sem=sem[:-1])


# -- significance of boundaries: false positives and power on the cpu checkpoint schedule --

CPU_STEPS = checkpoint_steps(last=8000, n=25)
CPU_X = np.log1p(CPU_STEPS)


def sigmoid(x, centre, height, width):
    return height / (1 + np.exp(-(x - centre) / width))


def null_curve(kind, rng):
    """A curve without a critical point and its standard errors (LLC units)."""
    sem = rng.uniform(1.5, 3.0, len(CPU_X))
    if kind == "flat":
        curve = np.full(len(CPU_X), 50.0)
    elif kind == "linear":
        curve = 10 * CPU_X
    elif kind == "sigmoid":
        curve = sigmoid(CPU_X, rng.uniform(3, 7), 80.0, rng.uniform(0.5, 1.0))
    else:  # "early": one rise, with the scatter of the first few steps twice the rest's
        sem = np.where(CPU_X < 2.5, 3.0, 1.5)
        curve = sigmoid(CPU_X, 5.5, 80.0, 0.6)
    return curve + sem * rng.standard_normal(len(CPU_X)), sem


PLANTED = {
    "AB": lambda x: sigmoid(x, 4.0, 100.0, 0.3) + sigmoid(x, 8.0, -35.0, 0.3),
    "AA": lambda x: sigmoid(x, 2.0, 20.0, 0.3) + sigmoid(x, 6.0, 80.0, 0.3),
}
SIGNIFICANCE_SEEDS = range(10)


def spurious_fraction(kind, min_z):
    found = []
    for seed in SIGNIFICANCE_SEEDS:
        llc, sem = null_curve(kind, np.random.default_rng(1000 + seed))
        stages, _ = detect_stages(CPU_STEPS, llc, llc_sem=sem, min_z=min_z)
        found.append(len(stages) > 1)
    return float(np.mean(found))


def test_significance_false_positive_rate_on_curves_without_a_critical_point():
    """The measured false-positive rate (printed; -s shows it) is at most 10% per family and
    5% overall at min_z = 2; without the test (min_z = 0) the noisy first steps alone give
    stages (measured 2026-12-01 on these 40 curves: 0 in every family at min_z = 2, 2 of
    10 early curves at min_z = 0; on 40 early curves 2 of 40 against 12 of 40)."""
    rates = {kind: spurious_fraction(kind, 2.0) for kind in ("flat", "linear", "sigmoid", "early")}
    untested = spurious_fraction("early", 0.0)
    print(f"false-positive rate at min_z=2: {rates}; early family at min_z=0: {untested}")
    assert max(rates.values()) <= 0.1
    assert np.mean(list(rates.values())) <= 0.05
    assert untested > rates["early"]  # the test is what removes them


@pytest.mark.parametrize("kinds", sorted(PLANTED))
def test_planted_boundaries_are_found_and_significant(kinds):
    hits = 0
    for seed in SIGNIFICANCE_SEEDS:
        rng = np.random.default_rng(2000 + seed)
        sem = rng.uniform(1.5, 3.0, len(CPU_X))
        llc = PLANTED[kinds](CPU_X) + sem * rng.standard_normal(len(CPU_X))
        stages, _ = detect_stages(CPU_STEPS, llc, llc_sem=sem)
        hits += stage_string(stages) == kinds
        assert all(s.end_z >= 2.0 for s in stages[:-1]) and stages[-1].end_z is None
    print(f"planted {kinds}: found in {hits} of {len(SIGNIFICANCE_SEEDS)}")
    assert hits >= 0.9 * len(SIGNIFICANCE_SEEDS)


def test_a_clear_peak_has_a_large_z():
    clear = PLANTED["AB"](CPU_X)
    stages, _ = detect_stages(CPU_STEPS, clear, llc_sem=np.full(len(CPU_X), 1.0), min_z=0)
    assert stage_string(stages) == "AB" and stages[0].end_z > 10


def test_random_walk_null_gives_the_chance_match_rate():
    """The issue's reviewer simulated a chance rate of 0.24 for the cpu run's five boundaries;
    PCA of random walks read by the same code gives about that, reproducibly."""
    bounds = [103, 214, 915, 2002, 5459]
    chance = random_walk_match_fractions(bounds, CPU_STEPS, smooth=1, walks=100, seed=5)
    assert chance.shape == (100,) and np.all((chance >= 0) & (chance <= 1))
    assert 0.1 < chance.mean() < 0.4
    again = random_walk_match_fractions(bounds, CPU_STEPS, smooth=1, walks=100, seed=5)
    np.testing.assert_array_equal(chance, again)
    with pytest.raises(ValueError, match="no boundaries"):
        random_walk_match_fractions([], CPU_STEPS)
