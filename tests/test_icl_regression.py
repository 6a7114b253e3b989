"""In-context regression: task sampler, token encoding, the paper's transformer, baselines
against closed forms, the training schedule and resume."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from sltrepro.models.icl_transformer import ICLTransformer, encode, num_params
from sltrepro.papers.icl_landscape.pipeline import (
    all_checkpoint_steps,
    block_steps,
    is_replicate,
    llc_rows,
    llc_steps,
)
from sltrepro.tasks.regression import (
    ols_expected_mse,
    ols_predictions,
    ridge_expected_mse,
    ridge_predictions,
    sample_batch,
    task_pool,
)
from sltrepro.train.icl import TrainSpec, checkpoint_steps, train, triangle_lr

# Bayes-optimal (ridge) per-position MSE for D = 4, K = 8, sigma^2 = 0.125 (P4, Monte Carlo)
PAPER_RIDGE = [4.125, 3.174, 2.282, 1.488, 0.888, 0.574, 0.409, 0.324]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_sampler_statistics():
    xs, ys, tasks = sample_batch(20_000, generator=gen())
    assert xs.shape == (20_000, 8, 4) and ys.shape == (20_000, 8) and tasks.shape == (20_000, 4)
    assert abs(xs.mean()) < 0.01 and abs(xs.var() - 1) < 0.01
    assert abs(tasks.mean()) < 0.02 and abs(tasks.var() - 1) < 0.03
    noise = ys - torch.einsum("bkd,bd->bk", xs, tasks)
    assert abs(noise.var() - 0.125) < 0.003  # sd of the estimate ~0.0006
    assert abs(ys.var() - 4.125) < 0.1  # D * 1 * 1 + sigma^2
    # tasks differ between sequences and the same seed repeats the batch
    assert torch.unique(tasks, dim=0).shape[0] == 20_000
    assert torch.equal(sample_batch(5, generator=gen(3))[0], sample_batch(5, generator=gen(3))[0])


def test_finite_task_pool():
    pool = task_pool(3, generator=gen())
    _, _, tasks = sample_batch(300, generator=gen(1), pool=pool)
    assert torch.unique(tasks, dim=0).shape[0] == 3
    assert all(any(torch.equal(t, p) for p in pool) for t in tasks)
    with pytest.raises(ValueError, match="task pool must be"):
        sample_batch(4, generator=gen(), pool=torch.zeros(3, 5))


def test_token_encoding_layout():
    xs = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    ys = -torch.arange(1, 7, dtype=torch.float32).reshape(2, 3)
    toks = encode(xs, ys)
    assert toks.shape == (2, 6, 5)
    assert torch.equal(toks[0, 0], torch.tensor([0.0, 0, 1, 2, 3]))
    assert torch.equal(toks[0, 1], torch.tensor([-1.0, 0, 0, 0, 0]))
    assert torch.equal(toks[1, 4, 1:], xs[1, 2]) and toks[1, 5, 0] == ys[1, 2]


def test_parameter_count_is_the_papers():
    assert num_params(ICLTransformer()) == 51_717


def test_prediction_of_y_k_cannot_see_y_k_or_later(one_thread):
    torch.manual_seed(0)
    model = ICLTransformer().eval()
    xs, ys, _ = sample_batch(4, generator=gen())
    base = model(encode(xs, ys))
    assert base.shape == (4, 8)
    changed = ys.clone()
    changed[:, 5] += 10.0
    out = model(encode(xs, changed))
    torch.testing.assert_close(out[:, :6], base[:, :6])  # y_6 is unseen up to x_6
    assert (out[:, 6:] - base[:, 6:]).abs().max() > 1e-4  # and seen afterwards


def test_ridge_matches_the_explicit_posterior_mean():
    xs, ys, _ = sample_batch(3, generator=gen(1))
    preds = ridge_predictions(xs, ys, noise_var=0.125)
    for b in range(3):
        for k in range(8):
            x, y = xs[b, :k].double().numpy(), ys[b, :k].double().numpy()
            # Woodbury form of the posterior mean: X^T (X X^T + sigma^2 I)^{-1} y
            t_hat = x.T @ np.linalg.solve(x @ x.T + 0.125 * np.eye(k), y) if k else np.zeros(4)
            assert preds[b, k].item() == pytest.approx(xs[b, k].double().numpy() @ t_hat, 1e-4)


def test_ridge_mse_matches_closed_form_and_the_papers_values():
    xs, ys, _ = sample_batch(40_000, generator=gen(2))
    empirical = (ridge_predictions(xs, ys) - ys).pow(2).mean(0)
    closed = ridge_expected_mse(xs).mean(0)
    # the closed form averages out the task and noise: ~0.5% agreement at this size
    torch.testing.assert_close(empirical, closed, rtol=0.03, atol=0.0)
    np.testing.assert_allclose(closed.numpy(), PAPER_RIDGE, rtol=0.02)
    assert closed.mean().item() == pytest.approx(1.658, rel=0.01)


def test_ols_matches_lstsq_and_closed_forms():
    xs, ys, _ = sample_batch(3, generator=gen(4))
    preds = ols_predictions(xs, ys)
    for b in range(3):
        for k in range(1, 8):
            t_hat = np.linalg.lstsq(xs[b, :k].double().numpy(), ys[b, :k].double().numpy())[0]
            assert preds[b, k].item() == pytest.approx(xs[b, k].double().numpy() @ t_hat, abs=1e-4)
    xs, ys, _ = sample_batch(40_000, generator=gen(5))
    mse = (ols_predictions(xs, ys) - ys).pow(2).mean(0).numpy()
    for position in (1, 2, 3, 8):  # positions with finite-variance closed forms
        assert mse[position - 1] == pytest.approx(ols_expected_mse(position), rel=0.05)
    assert ols_expected_mse(5) == float("inf")


def test_triangle_schedule_and_checkpoints():
    assert triangle_lr(0, 100, 1.0) == 0 and triangle_lr(50, 100, 1.0) == 1.0
    assert triangle_lr(75, 100, 1.0) == 0.5 and triangle_lr(100, 100, 1.0) == 0
    steps = checkpoint_steps(500_000, 100, 100)
    assert len(steps) == 190  # the paper's count: the two grids share few steps
    assert steps[0] == 0 and steps[-1] == 500_000 and steps == sorted(set(steps))


def test_training_keeps_its_checkpoints_and_resumes_exactly(tmp_path, one_thread):
    spec = TrainSpec(
        steps=40,
        batch_size=16,
        num_log_checkpoints=5,
        num_linear_checkpoints=3,
        log_every=10,
        save_every=20,
    )
    torch.manual_seed(0)
    whole = ICLTransformer()
    first = train(whole, spec, tmp_path / "a", seed=1)
    assert set(first["checkpoints"]) == set(checkpoint_steps(40, 5, 3))
    # restart from the state saved at step 20 in a fresh folder with a fresh model
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "resume.pt", tmp_path / "b" / "resume.pt")
    torch.manual_seed(123)
    resumed = ICLTransformer()
    second = train(resumed, spec, tmp_path / "b", seed=1)
    for (k, v), w in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, msg=k)
    assert first["history"] == second["history"]


def test_prior_mean_phase_at_step_0_does_not_count():
    """The untrained model's small outputs are not a phase: a minimum of E[y_hat^2] at the
    step-0 checkpoint fails the before-ICL metric; a later one passes."""
    from sltrepro.papers.icl_landscape.pipeline import stage_metrics

    table = pd.DataFrame(
        {
            "step": [0, 10, 100, 1000],
            "yhat_sq": [0.1, 0.2, 0.3, 2.0],
            "icl_score": [0.0, 0.0, -1.0, -3.0],
        }
    )
    null = dict(walks=5)
    assert stage_metrics(table, [], [], null)["yhat_sq_min_before_icl"] is False
    table["yhat_sq"] = [0.2, 0.01, 0.3, 2.0]
    assert stage_metrics(table, [], [], null)["yhat_sq_min_before_icl"] is True


def test_schedule_peak_can_move():
    """The learning-rate control's schedule: the same triangle with its peak moved."""
    assert triangle_lr(75, 100, 1.0, peak_fraction=0.75) == 1.0
    assert triangle_lr(50, 100, 1.0, 0.75) == pytest.approx(2 / 3)
    assert triangle_lr(90, 100, 1.0, 0.75) == pytest.approx(0.4)
    assert triangle_lr(100, 100, 1.0, 0.75) == 0
    # the default is the paper's half-way peak, exactly
    assert all(
        triangle_lr(s, 24_000, 3e-3) == triangle_lr(s, 24_000, 3e-3, 0.5)
        for s in range(0, 24_001, 7)
    )


def test_run_names_and_the_controls_train_spec():
    from sltrepro.papers.icl_landscape.pipeline import parse_run, train_spec

    assert parse_run("seed3") == (3, False)
    assert parse_run("lr_control_seed0") == (0, True)
    for bad in ("seed", "lr_control_3", "control_seed1", "seedx"):
        with pytest.raises(ValueError, match="expected seedN"):
            parse_run(bad)
    cfg = dict(
        steps=100,
        batch_size=8,
        peak_lr=1e-3,
        num_log_checkpoints=3,
        num_linear_checkpoints=2,
        num_tasks=None,
        noise_var=0.125,
        lr_control={"peak_fraction": 0.75},
    )
    assert train_spec(cfg).peak_fraction == 0.5
    assert train_spec(cfg, lr_control=True).peak_fraction == 0.75


def _regression_cfg(**overrides) -> dict:
    """A small ``regression:`` block (three seeds, every checkpoint estimated) with
    ``overrides``."""
    return {
        "steps": 24_000,
        "batch_size": 8,
        "peak_lr": 1e-3,
        "num_log_checkpoints": 25,
        "num_linear_checkpoints": 15,
        "num_tasks": None,
        "noise_var": 0.125,
        "seeds": [0, 1, 2],
        "reference_checkpoint_every": 1,
        "replicate_checkpoint_every": 1,
        "llc": {"num_chains": 4, "blocks": 2},
        **overrides,
    }


def _rise_then_fall(steps, fall_at):
    """An LLC curve that rises steeply to step ~1,000, then slowly (in log time) to a
    maximum at ``fall_at`` and then falls."""
    t = np.log1p(steps)
    knee, peak = np.log1p(1_000), np.log1p(fall_at)
    slow = 40 * np.clip(t - knee, 0, peak - knee) / (t[-1] - knee)
    return (
        100 / (1 + np.exp(-2 * (t - 5))) + slow - 60 * np.clip(t - peak, 0, None) / (t[-1] - peak)
    )


def test_lr_control_comparison_reads_the_shift_of_the_type_b_stage():
    """A fall that starts later in the control shows as a positive shift of the first type-B
    stage; identical curves show none, and no significant difference of the curves."""
    from sltrepro.papers.icl_landscape.pipeline import compare_lr_control, llc_stages

    cfg = _regression_cfg(
        steps=20_000,
        lr_control={"peak_fraction": 0.75},
        seeds=[0],
        stages=dict(plateau_tol=0.1, min_gap=0.3, min_change=0.05, min_z=2.0),
    )
    steps = np.array(checkpoint_steps(20_000, 25, 15))

    def table(fall_at):
        return pd.DataFrame(
            {
                "step": steps,
                "llc": _rise_then_fall(steps, fall_at),
                "llc_chain_std": 1.0,
                "healthy": True,
            }
        )

    main = table(3_000)
    main_stages = [
        {"start": s.start, "end": s.end, "type": s.type} for s in llc_stages(cfg, main)[0]
    ]
    assert "B" in [s["type"] for s in main_stages]
    same, _, _ = compare_lr_control(cfg, main, main_stages, table(3_000))
    assert same["lr_control_first_B_shift"] == 0
    assert same["lr_control_llc_diff_z_max"] == 0
    assert same["lr_control_peak_step"] == 15_000 and same["lr_control_peak_shift"] == 5_000
    later, summary, fit = compare_lr_control(cfg, main, main_stages, table(9_000))
    assert later["lr_control_first_B_shift"] > 2_000
    assert later["lr_control_llc_diff_z_max"] > 10
    assert summary["stages"][-1]["type"] == "B" and len(fit) > len(steps)
    with pytest.raises(ValueError, match="checkpoints differ"):
        compare_lr_control(cfg, main, main_stages, table(3_000).iloc[1:])
    # a control with its LLC at every third checkpoint (the cpu profile's replicates) reads
    # the same shift, and compares the curves at its own checkpoints only
    sparse = {**cfg, "replicate_checkpoint_every": 3}
    control = table(9_000)
    control.loc[~control["step"].isin(llc_steps(sparse, replicate=True)), "llc"] = np.nan
    coarse, _, _ = compare_lr_control(sparse, main, main_stages, control)
    assert coarse["lr_control_first_B_shift"] > 2_000
    assert coarse["lr_control_llc_diff_z_max_step"] in llc_steps(sparse, replicate=True)
    with pytest.raises(ValueError, match="LLC checkpoints missing"):
        compare_lr_control(cfg, main, main_stages, control)


def test_replicates_estimate_every_nth_checkpoint_and_the_last():
    """The first seed's main run reads every n-th checkpoint and the last; later seeds and
    the control every m-th and the last, a subset of the reference's, and their blocks
    split exactly those. An m that is not a multiple of n is an error."""
    cfg = _regression_cfg(replicate_checkpoint_every=3)
    every = all_checkpoint_steps(cfg)
    assert is_replicate(cfg, 0) is False
    assert is_replicate(cfg, 1) and is_replicate(cfg, 0, lr_control=True)
    assert llc_steps(cfg) == every
    sparse = llc_steps(cfg, replicate=True)
    assert sparse[:3] == every[:9:3] and sparse[-1] == every[-1]
    assert len(sparse) == len(every[::3]) + (every[-1] not in every[::3])
    blocks = [block_steps(cfg, b, replicate=True) for b in range(2)]
    assert sorted(blocks[0] + blocks[1]) == sparse
    assert llc_steps(_regression_cfg(), replicate=True) == every
    cpu_grid = _regression_cfg(reference_checkpoint_every=3, replicate_checkpoint_every=6)
    reference, replicate = llc_steps(cpu_grid), llc_steps(cpu_grid, replicate=True)
    assert reference == [*every[::3], every[-1]] and len(reference) == 14
    assert replicate == [*every[::6], every[-1]] and set(replicate) <= set(reference)
    with pytest.raises(ValueError, match="must be a multiple of reference_checkpoint_every"):
        llc_steps(_regression_cfg(reference_checkpoint_every=2, replicate_checkpoint_every=3))


def test_a_run_needs_an_llc_at_exactly_its_checkpoints():
    """A replicate's table carries an LLC at its grid only; a missing block or a stray
    estimate is an error naming the steps, not a silently thinner curve."""
    cfg = _regression_cfg(replicate_checkpoint_every=3)
    steps = all_checkpoint_steps(cfg)
    sparse = llc_steps(cfg, replicate=True)
    table = pd.DataFrame({"step": steps, "llc": [1.0 if s in sparse else np.nan for s in steps]})
    assert llc_rows(cfg, table, True, "seed1")["step"].tolist() == sparse
    with pytest.raises(ValueError, match=r"seed0: LLC checkpoints missing \[1, 2"):
        llc_rows(cfg, table, False, "seed0")
    table.loc[table["step"] == sparse[1], "llc"] = np.nan
    with pytest.raises(ValueError, match=rf"missing \[{sparse[1]}\]"):
        llc_rows(cfg, table, True, "seed1")
    table["llc"] = 1.0
    with pytest.raises(ValueError, match=r"unexpected \[1, 2"):
        llc_rows(cfg, table, True, "seed1")


def test_llc_figure_draws_the_replicates_and_a_sparse_control(tmp_path):
    """llc_stages.png with the later seeds and a control whose LLC is missing (NaN) at the
    checkpoints it skips, as the cpu profile writes them."""
    from sltrepro.papers.icl_landscape.figures import llc_and_loss

    steps = np.array(checkpoint_steps(2_000, 10, 5))
    llc = _rise_then_fall(steps, 1_500)

    def table(llc):
        return pd.DataFrame({"step": steps, "llc": llc, "loss": 4.0 - np.log1p(steps) / 4})

    fit = pd.DataFrame(
        {"log_step": np.log1p(steps), "llc_fit": llc, "llc_fit_std": np.ones_like(llc)}
    )
    sparse = np.where(np.arange(len(steps)) % 3 == 0, llc, np.nan)
    stages = [{"start": 0.0, "end": 2_000.0, "type": "A"}]
    path = tmp_path / "llc_stages.png"
    llc_and_loss(
        table(llc),
        fit,
        stages,
        path,
        control=(table(sparse), fit),
        replicates={1: (table(sparse), fit), 2: (table(sparse + 1), fit)},
    )
    assert path.stat().st_size > 10_000


def test_an_unhealthy_estimate_is_rerun_with_more_chains(monkeypatch):
    """Only the checkpoints that fail the gate are estimated again, with each of
    ``rerun_chains`` in turn until they pass; the table says how many chains each estimate
    ran, the traces are NaN past them, and the standard error divides by them."""
    import logging

    from sltrepro.papers.icl_landscape import pipeline

    # a fake estimator: step 3 is healthy with 8 chains, step 7 never; the others at once
    needs = {0: 4, 3: 8, 7: 99}
    calls = []

    def fake_llcs(models, data, llc_cfg, seeds, device):
        chains = llc_cfg["num_chains"]
        calls.append((chains, list(models)))
        rows = [
            {"llc": 1.0, "llc_chain_std": 2.0, "num_chains": chains, "healthy": chains >= needs[m]}
            for m in models
        ]
        return rows, np.ones((len(models), chains, 5), np.float32)

    monkeypatch.setattr(pipeline, "checkpoint_llcs", fake_llcs)
    monkeypatch.setattr(pipeline, "load_model", lambda state: state)
    monkeypatch.setattr(pipeline, "llc_data", lambda cfg, seed: None)
    monkeypatch.setattr(pipeline, "block_steps", lambda cfg, block, replicate: [0, 3, 7])
    cfg = _regression_cfg(llc={"num_chains": 4, "blocks": 1, "rerun_chains": [8, 16]})
    log = logging.getLogger("test")
    table, traces = pipeline.llc_block(cfg, {0: 0, 3: 3, 7: 7}, 0, 0, "cpu", log)
    assert calls == [(4, [0, 3, 7]), (8, [3, 7]), (16, [7])]
    assert table["num_chains"].tolist() == [4, 8, 16]
    assert table["healthy"].tolist() == [True, True, False]
    assert traces.shape == (3, 16, 5)
    assert np.isnan(traces[0, 4:]).all() and not np.isnan(traces[0, :4]).any()
    assert not np.isnan(traces[2]).any()
    np.testing.assert_allclose(pipeline.llc_sem(cfg, table), 2.0 / np.sqrt([4, 8, 16]))

    healthy_at_once = _regression_cfg(llc={"num_chains": 4, "blocks": 1, "rerun_chains": []})
    calls.clear()
    table, traces = pipeline.llc_block(healthy_at_once, {0: 0, 3: 3, 7: 7}, 0, 0, "cpu", log)
    assert calls == [(4, [0, 3, 7])] and traces.shape == (3, 4, 5)

    falling = _regression_cfg(llc={"num_chains": 4, "blocks": 1, "rerun_chains": [8, 8]})
    with pytest.raises(ValueError, match="must rise above num_chains"):
        pipeline.llc_block(falling, {}, 0, 0, "cpu", log)
