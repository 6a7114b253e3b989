"""Developmental stages from an LLC curve, and "essential dynamics" of a model's outputs.

Hoogland et al. 2024 (arXiv 2402.02364) split training into stages at the critical points of
the local learning coefficient (LLC) as a function of log training time:

1. fit a Gaussian process (GP) to ``llc`` against ``log(step + 1)``;
2. differentiate the GP mean in log time;
3. a boundary is a critical point of the fitted curve: a zero crossing of the derivative
   (a peak or a valley of the LLC) or a plateau (a local minimum of |slope| far below the
   steepest slope, where the LLC nearly stops moving before it moves again);
4. a stage is type ``A`` when the LLC rises across it and type ``B`` when it falls.

Step 3 is ours to make testable: a boundary must also be *significant*. On each side of
it the slope must change beyond the GP posterior's uncertainty of that change (the
steepest slope of the stage, in the stage's direction, against the slope at the boundary;
both are linear in the latent curve, so the z-score is exact under the GP, whose noise
includes the estimates' standard errors). Boundaries that fail are removed, weakest first,
and their stages merge. Without this a dip of 1.5 standard errors that the GP deepens, or
a wiggle in the first few steps, became a stage. ``benchmarks/stage_false_positives.py``
measures the false-positive rate on curves without a critical point.

"Essential dynamics" is a PCA of the model's outputs on a fixed batch of inputs, one vector
per checkpoint; turning points of the trajectory in PC space (extrema of a smoothed PC
coordinate over time) are compared with the LLC boundaries.

Both halves are generic: they see steps, numbers and output arrays, never a model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_solve
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class Stage:
    """One developmental stage: steps ``[start, end]`` and whether the LLC rose or fell."""

    start: float
    """First step of the stage (a training step; boundaries need not be checkpoints)."""
    end: float
    type: str
    """``"A"`` (LLC rises across the stage) or ``"B"`` (LLC falls)."""
    llc_start: float
    """GP-smoothed LLC at ``start`` and ``end``."""
    llc_end: float
    end_z: float | None = None
    """z-score of the slope change at the boundary that ends this stage (the smaller of
    its two sides, see :func:`boundary_z`); None for the last stage."""


@dataclass(frozen=True)
class LLCCurveFit:
    """The GP fit of LLC against log(step + 1), on an even grid of G points in log time."""

    log_steps: np.ndarray
    """(G,) the grid, log(step + 1)."""
    mean: np.ndarray
    """(G,) GP posterior mean of the LLC on the grid."""
    std: np.ndarray
    """(G,) GP posterior standard deviation of the latent (noise-free) curve on the grid."""
    slope: np.ndarray
    """(G,) d mean / d log(step + 1)."""
    noise_std: float
    """The scatter of the estimates (LLC units): the larger of the data's standard deviation
    around the fitted mean and the median standard error given with the data. No change of
    the LLC smaller than this is read as a stage."""
    kernel: str
    """The fitted kernel, for the record."""
    covariance: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    """(n,) log-steps -> (n, n) GP posterior covariance of the latent curve there (LLC^2)."""

    @property
    def steps(self) -> np.ndarray:
        """(G,) the grid in training steps."""
        return np.expm1(self.log_steps)


def _log_time(steps) -> np.ndarray:
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or len(steps) < 3:
        raise ValueError(f"need a 1-D array of at least 3 steps, got shape {steps.shape}")
    if np.any(steps < 0) or np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be non-negative and strictly increasing")
    return np.log1p(steps)


def fit_llc_curve(
    steps,
    llc,
    *,
    grid_size: int = 2000,
    length_scale: float | None = None,
    length_scale_bounds: tuple[float, float] = (0.2, 20.0),
    noise_bounds: tuple[float, float] = (1e-6, 1e1),
    llc_sem=None,
    seed: int = 0,
) -> LLCCurveFit:
    """Fit a GP (constant * RBF + white noise, y normalised) to ``llc`` vs log(step + 1).

    steps: (T,) increasing training steps of the checkpoints; llc: (T,) LLC estimates;
    llc_sem: optional (T,) standard errors of the estimates (e.g. chain std / sqrt(chains)),
    added to the GP as known per-point noise so the fit does not chase estimator scatter.
    ``length_scale`` (in units of log-steps) fixes the RBF length scale; by default it is
    fitted by maximum marginal likelihood within ``length_scale_bounds``. The white-noise
    level (in normalised units) absorbs the scatter of the LLC estimates.
    """
    x = _log_time(steps)
    y = np.asarray(llc, dtype=float)
    if y.shape != x.shape or not np.all(np.isfinite(y)):
        raise ValueError(f"llc must be {x.shape} finite numbers, got shape {y.shape}")
    bounds = "fixed" if length_scale is not None else length_scale_bounds
    start = length_scale if length_scale is not None else np.sqrt(np.prod(length_scale_bounds))
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(start, bounds) + WhiteKernel(1e-2, noise_bounds)
    sem = None if llc_sem is None else np.asarray(llc_sem, dtype=float)
    if sem is not None and (sem.shape != y.shape or not np.all(np.isfinite(sem))):
        raise ValueError(f"llc_sem must be {y.shape} finite numbers, got shape {sem.shape}")
    # y normalised here rather than by normalize_y, so the latent covariance below can be
    # scaled back; alpha (the known noise) in the same units
    y_mean, y_std = y.mean(), y.std()
    alpha = 1e-10 if sem is None else (sem / y_std) ** 2 + 1e-10
    gp = GaussianProcessRegressor(kernel, alpha=alpha, n_restarts_optimizer=3, random_state=seed)
    # one BLAS thread: these matrices are small, and a threaded Cholesky on a busy machine is
    # ten times slower than a serial one
    with warnings.catch_warnings(), threadpool_limits(1):
        # hyperparameters at a bound (e.g. no noise on a clean curve) are expected, not errors
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x[:, None], (y - y_mean) / y_std)
        grid = np.linspace(x[0], x[-1], grid_size)
        mean = gp.predict(grid[:, None]) * y_std + y_mean
        noise = float(np.std(y - (gp.predict(x[:, None]) * y_std + y_mean)))
    covariance = _latent_covariance(gp, y_std)
    std = np.sqrt(np.clip(_latent_variance(gp, y_std, grid), 0.0, None))
    if sem is not None:
        noise = max(noise, float(np.median(sem)))
    return LLCCurveFit(grid, mean, std, np.gradient(mean, grid), noise, str(gp.kernel_), covariance)


def _latent_terms(gp: GaussianProcessRegressor, x: np.ndarray):
    """Cross-covariance with the data (signal kernel only) and K^-1 times its transpose."""
    signal = gp.kernel_.k1  # constant * RBF: the white noise is not part of the curve
    k_star = signal(x[:, None], gp.X_train_)
    return signal, k_star, cho_solve((gp.L_, True), k_star.T)


def _latent_variance(gp: GaussianProcessRegressor, y_std: float, x: np.ndarray) -> np.ndarray:
    signal, k_star, v = _latent_terms(gp, x)
    return (signal.diag(x[:, None]) - np.einsum("ij,ji->i", k_star, v)) * y_std**2


def _latent_covariance(gp: GaussianProcessRegressor, y_std: float):
    def covariance(x):
        x = np.asarray(x, dtype=float)
        signal, k_star, v = _latent_terms(gp, x)
        return (signal(x[:, None]) - k_star @ v) * y_std**2

    return covariance


def critical_points(
    fit: LLCCurveFit,
    *,
    plateau_tol: float = 0.1,
    min_gap: float = 0.3,
    min_change: float = 0.05,
    min_z: float = 2.0,
) -> list[int]:
    """Grid indices of the critical points of the fitted LLC curve, in time order.

    Zero crossings of the slope (peaks and valleys) always count. A local minimum of
    |slope| counts as a plateau when it is below ``plateau_tol`` times the largest |slope|.
    Points within ``min_gap`` (log-steps) of either end of the curve are dropped, and so
    are wiggles of the fit: while some stage changes the LLC by less than ``min_change``
    times the LLC range (or less than the scatter of the data around the fit), or two
    boundaries are closer than ``min_gap``, that pair of boundaries collapses into its
    flatter member (a flat stretch is one boundary). Last, every boundary must be
    significant (:func:`boundary_z` at least ``min_z``): the weakest one that is not is
    removed until all are; ``min_z = 0`` keeps the boundaries whose slope changes in the
    right direction at all.
    """
    slope = fit.slope
    sign = np.sign(slope)
    crossings = np.flatnonzero(sign[:-1] * sign[1:] < 0) + 1
    mag = np.abs(slope)
    interior = np.arange(1, len(mag) - 1)
    is_min = (mag[interior] <= mag[interior - 1]) & (mag[interior] < mag[interior + 1])
    plateaus = interior[is_min & (mag[interior] < plateau_tol * mag.max())]
    x = fit.log_steps
    kept = [
        int(i)
        for i in np.union1d(crossings, plateaus)
        if x[i] - x[0] >= min_gap and x[-1] - x[i] >= min_gap
    ]
    min_rise = max(min_change * (fit.mean.max() - fit.mean.min()), fit.noise_std)
    points = _prune(fit, kept, min_gap, min_rise)
    while points:
        z = boundary_z(fit, points)
        weakest = int(np.argmin(z))
        if z[weakest] >= min_z:
            break
        points.pop(weakest)
    return points


def boundary_z(fit: LLCCurveFit, points: list[int]) -> np.ndarray:
    """(len(points),) z-score of the slope change at each boundary (grid indices, in order).

    For each stage next to boundary b (direction s = +1 if the LLC rises across it, -1 if
    it falls) the change is d = s * (slope at the stage's steepest point - slope at b): a
    peak, a valley and a plateau all have d > 0 on both sides. Both slopes are the grid's
    finite differences (as ``fit.slope``) of the latent GP curve, so d is linear in it and
    its standard deviation comes from ``fit.covariance``. A boundary's z is the smaller of
    its two sides' d / sd(d).
    """
    edges = [0, *points, len(fit.log_steps) - 1]
    side_z = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        direction = 1.0 if fit.mean[b] >= fit.mean[a] else -1.0
        steepest = a + int(np.argmax(direction * fit.slope[a : b + 1]))
        z_start = _slope_change_z(fit, steepest, a, direction) if a != 0 else None
        z_end = _slope_change_z(fit, steepest, b, direction) if b != edges[-1] else None
        side_z.append((z_start, z_end))
    return np.array([min(side_z[k][1], side_z[k + 1][0]) for k in range(len(points))])


def _slope_weights(i: int, size: int, dx: float) -> dict[int, float]:
    """Weights on the grid values of np.gradient's slope at index i (one-sided at the ends)."""
    if i == 0:
        return {0: -1 / dx, 1: 1 / dx}
    if i == size - 1:
        return {size - 2: -1 / dx, size - 1: 1 / dx}
    return {i - 1: -0.5 / dx, i + 1: 0.5 / dx}


def _slope_change_z(fit: LLCCurveFit, steepest: int, boundary: int, direction: float) -> float:
    """z of direction * (slope[steepest] - slope[boundary]) under the latent GP posterior."""
    size, dx = len(fit.log_steps), fit.log_steps[1] - fit.log_steps[0]
    weights: dict[int, float] = {}
    for i, sign in ((steepest, direction), (boundary, -direction)):
        for j, w in _slope_weights(i, size, dx).items():
            weights[j] = weights.get(j, 0.0) + sign * w
    idx = np.array(sorted(weights))
    w = np.array([weights[j] for j in idx])
    change = float(w @ fit.mean[idx])
    var = float(w @ fit.covariance(fit.log_steps[idx]) @ w)
    if change <= 0:
        return change / np.sqrt(max(var, 1e-300))
    return change / np.sqrt(var) if var > 0 else np.inf


def _prune(fit: LLCCurveFit, points: list[int], min_gap: float, min_rise: float) -> list[int]:
    """Collapse the weakest too-small stage until every stage is big and long enough."""
    points = list(points)
    mag, x = np.abs(fit.slope), fit.log_steps
    while points:
        edges = [0, *points, len(x) - 1]
        rises = np.abs(np.diff(fit.mean[edges]))
        widths = np.diff(x[edges])
        weak = np.flatnonzero((rises < min_rise) | (widths < min_gap))
        if len(weak) == 0:
            break
        k = int(weak[np.argmin(rises[weak])])  # stage k runs edges[k] .. edges[k + 1]
        if k == 0:
            points.pop(0)
        elif k == len(points):
            points.pop()
        else:
            a, b = points[k - 1], points[k]
            points[k - 1 : k + 1] = [a if mag[a] <= mag[b] else b]
    return points


def stages_from_fit(fit: LLCCurveFit, boundaries: list[int]) -> list[Stage]:
    """Stages between consecutive boundaries (grid indices), plus the first and last point."""
    edges = [0, *boundaries, len(fit.log_steps) - 1]
    steps = fit.steps
    z = [*(float(v) for v in boundary_z(fit, boundaries)), None] if boundaries else [None]
    out = []
    for (a, b), end_z in zip(zip(edges[:-1], edges[1:], strict=True), z, strict=True):
        rise = fit.mean[b] - fit.mean[a]
        out.append(
            Stage(
                start=float(steps[a]),
                end=float(steps[b]),
                type="A" if rise > 0 else "B",
                llc_start=float(fit.mean[a]),
                llc_end=float(fit.mean[b]),
                end_z=end_z,
            )
        )
    return out


def detect_stages(
    steps,
    llc,
    *,
    plateau_tol: float = 0.1,
    min_gap: float = 0.3,
    min_change: float = 0.05,
    min_z: float = 2.0,
    **fit_kwargs,
) -> tuple[list[Stage], LLCCurveFit]:
    """Stages of an LLC curve: GP fit in log time, boundaries at its critical points.

    steps: (T,) increasing checkpoint steps; llc: (T,) LLC at those steps. Extra keyword
    arguments go to :func:`fit_llc_curve`; the thresholds are those of
    :func:`critical_points`. Returns the stages (in time order, covering
    ``[steps[0], steps[-1]]``) and the fit they were read from.
    """
    fit = fit_llc_curve(steps, llc, **fit_kwargs)
    points = critical_points(
        fit, plateau_tol=plateau_tol, min_gap=min_gap, min_change=min_change, min_z=min_z
    )
    return stages_from_fit(fit, points), fit


def stage_string(stages: list[Stage]) -> str:
    """The stage types in order, e.g. ``"AABBA"``."""
    return "".join(s.type for s in stages)


def boundaries(stages: list[Stage]) -> list[float]:
    """The steps between consecutive stages (len(stages) - 1 of them)."""
    return [s.end for s in stages[:-1]]


# -- essential dynamics --------------------------------------------------------------------


@dataclass(frozen=True)
class EssentialDynamics:
    """PCA of model outputs across checkpoints."""

    coords: np.ndarray
    """(T, n_components) each checkpoint's coordinates on the principal components."""
    explained_variance_ratio: np.ndarray
    """(n_components,)"""
    components: np.ndarray
    """(n_components, F) the principal directions in output space (F = flattened size)."""


def essential_dynamics(outputs_by_checkpoint, n_components: int = 3) -> EssentialDynamics:
    """PCA of the outputs of every checkpoint on one fixed input batch.

    outputs_by_checkpoint: (T, ...) array, one row per checkpoint (e.g. (T, batch, K)
    predictions); each row is flattened into one vector of F numbers. The PCA centres the
    rows (sklearn's PCA), so the coordinates describe motion relative to the mean output.
    """
    rows = np.asarray(outputs_by_checkpoint, dtype=float)
    if rows.ndim < 2 or rows.shape[0] < 2:
        raise ValueError(f"need outputs of at least 2 checkpoints, got shape {rows.shape}")
    rows = rows.reshape(rows.shape[0], -1)
    n = min(n_components, rows.shape[0], rows.shape[1])
    pca = PCA(n_components=n, svd_solver="full")
    coords = pca.fit_transform(rows)
    return EssentialDynamics(coords, pca.explained_variance_ratio_, pca.components_)


def turning_points(
    steps, coords, *, smooth: int = 3, min_prominence: float = 0.05, min_gap: float = 0.3
) -> list[int]:
    """Checkpoint indices where the PC trajectory turns: extrema of a smoothed PC coordinate.

    steps: (T,) checkpoint steps; coords: (T, C) PC coordinates. Each coordinate is smoothed
    with a centred moving average over ``smooth`` checkpoints; an interior extremum counts
    when the coordinate moves by at least ``min_prominence`` times its range on both sides
    before the next extremum (so noise wiggles do not count). Extrema within ``min_gap``
    log-steps of an earlier one (of any component) are merged into it.
    """
    x = _log_time(steps)
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[0] != len(x):
        raise ValueError(f"coords must be ({len(x)}, C), got {coords.shape}")
    found = set()
    for c in coords.T:
        found.update(_prominent_extrema(_moving_average(c, smooth), min_prominence))
    kept: list[int] = []
    for i in sorted(found):
        if not kept or x[i] - x[kept[-1]] >= min_gap:
            kept.append(int(i))
    return kept


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return values
    pad = width // 2
    padded = np.pad(values, pad, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")[: len(values)]


def _prominent_extrema(values: np.ndarray, min_prominence: float) -> list[int]:
    """Interior indices of alternating extrema that each rise/fall by the threshold."""
    threshold = min_prominence * (values.max() - values.min())
    if threshold <= 0:
        return []
    # Walk the curve keeping the running extreme in the current direction; a reversal by
    # more than the threshold confirms it (a zig-zag filter).
    extrema: list[int] = []
    anchor, direction = 0, 0
    for i in range(1, len(values)):
        if direction == 0:
            if abs(values[i] - values[0]) >= threshold:
                direction, anchor = int(np.sign(values[i] - values[0])), i
        elif direction * (values[i] - values[anchor]) > 0:
            anchor = i
        elif direction * (values[anchor] - values[i]) >= threshold:
            extrema.append(anchor)
            direction, anchor = -direction, i
    return extrema


def match_to_checkpoints(boundary_steps, turning_steps, checkpoint_steps) -> list[bool]:
    """For each LLC boundary: is a turning point within one checkpoint interval of it?

    Steps are placed on the checkpoint index axis (boundaries by interpolation in log time)
    and a match means |index(boundary) - index(turning point)| <= 1.
    """
    x = _log_time(checkpoint_steps)
    index = np.arange(len(x))
    b = np.interp(np.log1p(np.asarray(boundary_steps, dtype=float)), x, index)
    t = np.interp(np.log1p(np.asarray(turning_steps, dtype=float)), x, index)
    return [bool(len(t) and np.min(np.abs(t - bi)) <= 1.0) for bi in b]


def random_walk_match_fractions(
    boundary_steps,
    checkpoint_steps,
    *,
    n_components: int = 3,
    smooth: int = 3,
    dims: int = 64,
    walks: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """(walks,) chance match fractions of ``boundary_steps``: the null of the ED matching.

    Each walk is a Gaussian random walk in ``dims`` dimensions with one independent step per
    checkpoint interval (as many checkpoints as ``checkpoint_steps``); its essential
    dynamics and turning points are read exactly as the model's (:func:`essential_dynamics`,
    :func:`turning_points` with ``smooth``), and matched to the same boundaries. PCA of a
    random walk gives smooth "horseshoe" components (cosines in time) whose extrema are
    turning points nothing developmental put there.
    """
    steps = np.asarray(checkpoint_steps, dtype=float)
    if len(boundary_steps) == 0:
        raise ValueError("no boundaries to match")
    rng = np.random.default_rng(seed)
    out = np.empty(walks)
    for i in range(walks):
        path = np.cumsum(rng.standard_normal((len(steps), dims)), axis=0)
        coords = essential_dynamics(path, n_components).coords
        turns = turning_points(steps, coords, smooth=smooth)
        out[i] = np.mean(match_to_checkpoints(boundary_steps, steps[turns], steps))
    return out
