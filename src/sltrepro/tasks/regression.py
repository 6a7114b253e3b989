"""In-context linear regression (Garg et al. 2022; Raventós et al. 2023; Hoogland et al. 2024).

A sequence holds K pairs (x_k, y_k) with x_k ~ N(0, I_D) and y_k = t . x_k + N(0, sigma^2),
one task t per sequence: t ~ N(0, I_D) fresh every time (infinite task diversity) or drawn
uniformly from a fixed pool of M tasks. The model predicts y_k from x_1..x_k and y_1..y_{k-1}.

Baselines for y_k given the first k-1 pairs, each a (B, K) tensor of predictions:

- the prior mean, 0;
- ordinary least squares (minimum-norm when k-1 < D);
- the Bayes-optimal predictor for Gaussian tasks: the posterior-mean (ridge) estimate
  t_hat = (X^T X + sigma^2 I)^{-1} X^T y, whose expected squared error has the closed form
  sigma^2 + x_k^T Sigma_post x_k with Sigma_post = sigma^2 (X^T X + sigma^2 I)^{-1}.
"""

import torch

DIM = 4
NUM_EXAMPLES = 8
NOISE_VAR = 0.125


def task_pool(size: int, dim: int = DIM, *, generator: torch.Generator) -> torch.Tensor:
    """A finite set of M = ``size`` tasks, (M, D), each t ~ N(0, I_D)."""
    if size < 1:
        raise ValueError(f"a task pool needs at least one task, got {size}")
    return torch.randn(size, dim, generator=generator)


def sample_batch(
    batch: int,
    *,
    dim: int = DIM,
    num_examples: int = NUM_EXAMPLES,
    noise_var: float = NOISE_VAR,
    generator: torch.Generator,
    pool: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch of sequences: xs (B, K, D), ys (B, K), tasks (B, D); float32.

    ``pool`` (M, D): draw each sequence's task uniformly from it instead of from N(0, I).
    """
    if batch < 1 or num_examples < 1 or dim < 1 or noise_var < 0:
        raise ValueError(
            f"bad batch spec: batch={batch}, K={num_examples}, D={dim}, noise_var={noise_var}"
        )
    if pool is None:
        tasks = torch.randn(batch, dim, generator=generator)
    else:
        if pool.ndim != 2 or pool.shape[1] != dim:
            raise ValueError(f"task pool must be (M, {dim}), got {tuple(pool.shape)}")
        tasks = pool[torch.randint(len(pool), (batch,), generator=generator)]
    xs = torch.randn(batch, num_examples, dim, generator=generator)
    noise = torch.randn(batch, num_examples, generator=generator) * noise_var**0.5
    ys = torch.einsum("bkd,bd->bk", xs, tasks) + noise
    return xs, ys, tasks


def _context_sums(xs: torch.Tensor, ys: torch.Tensor):
    """For each position k: X^T X and X^T y over the pairs before k (exclusive prefix sums).

    Returns (B, K, D, D) and (B, K, D) in float64.
    """
    xs, ys = xs.double(), ys.double()
    outer = torch.einsum("bki,bkj->bkij", xs, xs)
    xy = xs * ys[..., None]
    gram = torch.cumsum(outer, 1) - outer
    moment = torch.cumsum(xy, 1) - xy
    return gram, moment


def ridge_predictions(
    xs: torch.Tensor, ys: torch.Tensor, noise_var: float = NOISE_VAR, prior_var: float = 1.0
) -> torch.Tensor:
    """Posterior-mean (Bayes-optimal for t ~ N(0, prior_var I)) predictions, (B, K).

    Position k uses the k-1 pairs before it; position 1 predicts the prior mean 0.
    """
    gram, moment = _context_sums(xs, ys)
    eye = torch.eye(xs.shape[-1], dtype=gram.dtype)
    t_hat = torch.linalg.solve(gram + (noise_var / prior_var) * eye, moment)
    return torch.einsum("bkd,bkd->bk", xs.double(), t_hat).to(xs.dtype)


def ridge_expected_mse(
    xs: torch.Tensor, noise_var: float = NOISE_VAR, prior_var: float = 1.0
) -> torch.Tensor:
    """Closed-form E[(y_k - ridge_k)^2 | x's] = sigma^2 + x_k^T Sigma_post x_k, (B, K)."""
    gram, _ = _context_sums(xs, torch.zeros(xs.shape[:2], dtype=xs.dtype))
    eye = torch.eye(xs.shape[-1], dtype=gram.dtype)
    cov = noise_var * torch.linalg.inv(gram + (noise_var / prior_var) * eye)
    x = xs.double()
    return (noise_var + torch.einsum("bki,bkij,bkj->bk", x, cov, x)).to(xs.dtype)


def ols_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Least-squares predictions (minimum-norm when under-determined), (B, K).

    Position k fits the k-1 pairs before it with the pseudo-inverse; position 1 predicts 0.
    """
    batch, num_examples, dim = xs.shape
    preds = torch.zeros(batch, num_examples, dtype=torch.float64)
    x, y = xs.double(), ys.double()
    for k in range(1, num_examples):
        t_hat = torch.linalg.pinv(x[:, :k]) @ y[:, :k, None]  # (B, D, 1)
        preds[:, k] = (x[:, k, None, :] @ t_hat)[:, 0, 0]
    return preds.to(xs.dtype)


def ols_expected_mse(position: int, dim: int = DIM, noise_var: float = NOISE_VAR) -> float:
    """E[(y_k - ols_k)^2] over Gaussian x and t, for n = position - 1 context pairs.

    n < D: the fit sees t only on an n-dimensional subspace, error (D - n) from the rest
    plus sigma^2 n / (D - n - 1) from the noise (inverse-Wishart mean); n > D + 1:
    sigma^2 (1 + D / (n - D - 1)). Infinite (returned as inf) for n in {D - 1, D, D + 1}.
    """
    n = position - 1
    if n < dim - 1:
        return noise_var + (dim - n) + noise_var * n / (dim - n - 1)
    if n > dim + 1:
        return noise_var * (1 + dim / (n - dim - 1))
    return float("inf")
