"""Stage detection and essential dynamics on synthetic curves with known critical points."""

import numpy as np
import pytest

from sltrepro.stages import (
    boundaries,
    detect_stages,
    essential_dynamics,
    match_to_checkpoints,
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
