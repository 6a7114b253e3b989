"""Hoogland et al. 2024, "The Developmental Landscape of In-Context Learning": the
linear-regression transformer (Sec. 4, App. B-D). The config block is ``regression:``.

Method:

1. ``train`` (one job per seed): the 2-layer, 4-head, d_model 64 transformer on in-context
   linear regression (D = 4, K = 8, sigma^2 = 0.125, a fresh task per sequence), Adam with the
   one-cycle triangle learning rate; checkpoints at the union of log-spaced and linear steps.
2. ``llc`` (one job per seed and block of checkpoints): the LLC of every checkpoint with the
   shared SGLD estimator on a fixed set of sequences, at every
   ``reference_checkpoint_every``-th checkpoint of the first seed (the reference curve) and
   every ``replicate_checkpoint_every``-th of the replicates, the later seeds and the
   learning-rate control, which test its stage order and spread. The loss is the
   per-token MSE; the plotted LLC is the mean of the K per-token LLCs (each token with its
   own posterior when ``per_token_posteriors``, else the K components read on one
   posterior of the mean loss, whose mean is then exactly the LLC of the mean loss).
3. ``probe`` (one job per seed): behaviour and structure of every checkpoint on one fixed
   evaluation batch: loss by context position, ICL score (loss at the last position minus
   the first), E[y_hat^2], LayerNorm weight collapse, singular values of the token
   embedding; and the model's outputs on a fixed batch for the essential dynamics.
4. ``analyze``: stages from a Gaussian-process fit of LLC vs log step (``sltrepro.stages``),
   essential dynamics (PCA of the outputs) and its turning points, baselines (prior mean,
   OLS, Bayes-optimal ridge) on the evaluation batch, and the metrics the claims read.
5. ``metrics`` merges the halves' metrics into the paper's metrics.json.

The learning-rate control (issue 18 §4, when the block has ``lr_control:``): the first seed
trained again with the one-cycle peak moved to ``lr_control.peak_fraction`` of training,
its LLC estimated at the replicate checkpoints on the same data and chain seeds, and its stages
set beside the main run's (:func:`compare_lr_control`): a type-B stage that follows the
schedule moves with the peak, one that follows the development does not.

The functions here never see the step context: they take the ``regression:`` config block,
tables and arrays, and return tables, arrays and dicts; ``__init__.py`` reads and writes
the files.
"""

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sltrepro import stages as stg
from sltrepro.health import health_metrics
from sltrepro.llc import SamplerSettings, estimate_llc_trajectory
from sltrepro.models.icl_transformer import ICLTransformer, encode, num_params
from sltrepro.seeds import all_seeds_flags, joined_reasons, stage_order
from sltrepro.tasks.regression import (
    ols_predictions,
    ridge_expected_mse,
    ridge_predictions,
    sample_batch,
)
from sltrepro.train.icl import TrainSpec, checkpoint_steps, mse_by_position, train

# Seeds of the fixed batches are offset from the training seed so no batch is a training batch.
LLC_DATA_SEED = 10_000
EVAL_SEED = 20_000
ED_SEED = 30_000
# ICL has begun once the last position's loss is this far below the first's (the prior-mean
# predictor scores 0, the Bayes-optimal ridge predictor 0.324 - 4.125 = -3.8)
ICL_ONSET = -0.5


# -- config ------------------------------------------------------------------------------


def train_spec(cfg: dict, lr_control: bool = False) -> TrainSpec:
    """The TrainSpec of a ``regression:`` config block; with ``lr_control``, that of the
    learning-rate control (the schedule's peak at ``lr_control.peak_fraction``)."""
    return TrainSpec(
        steps=cfg["steps"],
        batch_size=cfg["batch_size"],
        peak_lr=cfg["peak_lr"],
        num_log_checkpoints=cfg["num_log_checkpoints"],
        num_linear_checkpoints=cfg["num_linear_checkpoints"],
        num_tasks=cfg["num_tasks"],
        noise_var=cfg["noise_var"],
        peak_fraction=cfg["lr_control"]["peak_fraction"] if lr_control else 0.5,
    )


LR_CONTROL_PREFIX = "lr_control_"


def parse_run(run: str) -> tuple[int, bool]:
    """The name of a training run (the DAG's folder under train/, llc/ and probe/) ->
    (seed, whether it is the learning-rate control): "seed3" -> (3, False),
    "lr_control_seed0" -> (0, True)."""
    lr_control = run.startswith(LR_CONTROL_PREFIX)
    name = run.removeprefix(LR_CONTROL_PREFIX)
    if not name.startswith("seed") or not name[4:].isdigit():
        raise ValueError(f"run {run!r}: expected seedN or {LR_CONTROL_PREFIX}seedN")
    return int(name[4:]), lr_control


def lr_peak_step(cfg: dict, lr_control: bool = False) -> int:
    """The step where the one-cycle schedule peaks (of the control with ``lr_control``)."""
    spec = train_spec(cfg, lr_control)
    return int(spec.peak_fraction * spec.steps)


def all_checkpoint_steps(cfg: dict) -> list[int]:
    spec = train_spec(cfg)
    return checkpoint_steps(spec.steps, spec.num_log_checkpoints, spec.num_linear_checkpoints)


def is_replicate(cfg: dict, seed: int, lr_control: bool = False) -> bool:
    """Whether a run is a replicate (a later seed, or the learning-rate control): its LLC is
    read on the ``replicate_checkpoint_every`` grid; the first seed's main run, the
    reference, on the denser ``reference_checkpoint_every`` one."""
    return lr_control or seed != cfg["seeds"][0]


def llc_steps(cfg: dict, replicate: bool = False) -> list[int]:
    """The checkpoints whose LLC a run estimates: every ``reference_checkpoint_every``-th
    (a replicate: every ``replicate_checkpoint_every``-th) and the last, since the LLC rise
    reads the first and last. The replicates' grid must lie inside the reference's, so that
    the learning-rate control is compared with the main run where both have an estimate."""
    reference, every = cfg["reference_checkpoint_every"], cfg["replicate_checkpoint_every"]
    if every % reference:
        raise ValueError(
            f"replicate_checkpoint_every {every} must be a multiple of "
            f"reference_checkpoint_every {reference}: the replicates' LLC checkpoints must "
            "be a subset of the reference's"
        )
    steps = all_checkpoint_steps(cfg)
    sparse = steps[:: every if replicate else reference]
    return sparse if sparse[-1] == steps[-1] else [*sparse, steps[-1]]


def block_steps(cfg: dict, block: int, replicate: bool = False) -> list[int]:
    """Checkpoints of LLC job ``block``: every ``blocks``-th of :func:`llc_steps`, so blocks
    cost about the same."""
    return llc_steps(cfg, replicate)[block :: cfg["llc"]["blocks"]]


def fixed_batch(cfg: dict, size: int, seed: int):
    """A reproducible batch (xs, ys, tasks) from the training distribution."""
    gen = torch.Generator().manual_seed(seed)
    return sample_batch(size, noise_var=cfg["noise_var"], generator=gen)


def load_model(state: dict) -> ICLTransformer:
    model = ICLTransformer()
    model.load_state_dict(state)
    return model.eval()


# -- 1. train ------------------------------------------------------------------------------


def train_seed(
    cfg: dict, seed: int, workdir: Path, log=None, lr_control: bool = False, device="cpu"
) -> tuple[dict, pd.DataFrame]:
    """Train one seed on ``device`` (with ``lr_control``, on the control's schedule) ->
    ({step: state_dict on the CPU}, history (step, lr, loss)).

    Resumes from ``workdir/resume.pt`` when a run was interrupted and removes it when done.
    """
    torch.manual_seed(seed)  # the initialisation, on the CPU whatever the device
    model = ICLTransformer()
    spec = train_spec(cfg, lr_control)
    out = train(model, spec, workdir, seed=seed, log=log, device=device)
    (Path(workdir) / "resume.pt").unlink(missing_ok=True)
    return out["checkpoints"], pd.DataFrame(out["history"], columns=["step", "lr", "loss"])


# -- 2. llc --------------------------------------------------------------------------------


def per_token_loss(preds: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(B, K), (B, K) -> (K,) the MSE at each context position (a 1-D loss for the LLC)."""
    return mse_by_position(preds, ys)


def checkpoint_llcs(
    models: list[ICLTransformer], data, llc_cfg: dict, seeds: list[int], device
) -> tuple[list[dict], np.ndarray]:
    """The LLC of each of the M checkpoints (all in one trajectory run, the same numbers as
    one estimate_llc call each): one row per checkpoint with the mean of the K per-token
    LLCs, their values, the spread and the diagnostics (with one posterior per token: the
    worst over the K estimates), and the (M, C, D) LLC traces (with one posterior per
    token: the mean over the K tokens' traces)."""
    settings = SamplerSettings.from_config(llc_cfg)
    kwargs = dict(seed=seeds, device=device)  # verbose: a progress line every 30 s in the log
    if llc_cfg["per_token_posteriors"]:
        tokens = [
            estimate_llc_trajectory(
                None, models, lambda p, y, k=k: per_token_loss(p, y)[k], data, settings, **kwargs
            )
            for k in range(models[0].num_examples)
        ]
        by_checkpoint = [list(results) for results in zip(*tokens, strict=True)]
    else:
        trajectory = estimate_llc_trajectory(None, models, per_token_loss, data, settings, **kwargs)
        by_checkpoint = [[result] for result in trajectory]
    rows = [_llc_row(results, llc_cfg["per_token_posteriors"]) for results in by_checkpoint]
    traces = [np.mean([r.llc_trace for r in results], axis=0) for results in by_checkpoint]
    return rows, np.stack(traces).astype(np.float32)


def _llc_row(results: list, per_token_posteriors: bool) -> dict:
    """One checkpoint's row from its LLCResult (or one per token)."""
    if per_token_posteriors:
        per_token = np.array([r.llc_mean for r in results])
        std = float(np.mean([r.llc_std for r in results]))
    else:
        per_token = results[0].llc_components
        std = results[0].llc_std
    rows = [r.summary_row() for r in results]
    row = {"llc": float(per_token.mean()), "llc_chain_std": std}
    row["num_chains"] = results[0].num_chains
    row["diverged_chains"] = sum(r["diverged_chains"] for r in rows)
    row["mala_acceptance"] = float(np.nanmean([r["mala_acceptance"] for r in rows]))
    row["healthy"] = all(r["healthy"] for r in rows)
    row["rhat"] = max(r["rhat"] for r in rows)
    row["ess_bulk"] = min(r["ess_bulk"] for r in rows)
    row["ess_tail"] = min(r["ess_tail"] for r in rows)
    row["loss_budget"] = rows[0]["loss_budget"]
    row["health_reasons"] = "; ".join(sorted({r["health_reasons"] for r in rows} - {""}))
    row.update({f"llc_token{k + 1}": float(v) for k, v in enumerate(per_token)})
    return row


def llc_data(cfg: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed LLC data set of a training seed: (tokens, ys)."""
    xs, ys, _ = fixed_batch(cfg, cfg["llc"]["num_samples"], LLC_DATA_SEED + seed)
    return encode(xs, ys), ys


def chain_seed(seed: int, step: int) -> int:
    """The chain seed of a checkpoint's LLC estimate: its training seed's and step's only."""
    return seed * 100_003 + step


def llc_block(
    cfg: dict, states: dict, seed: int, block: int, device, log, replicate: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """LLC of the M checkpoints (``states``: {step: state_dict}) in one block of a run (of
    a replicate: :func:`llc_steps`): one row each, and their (M, C, D) LLC traces, C the
    most chains any estimate may use (NaN rows for the chains an estimate did not run).

    An estimate that fails the health gate is estimated again from scratch with each chain
    count of ``llc.rerun_chains`` in turn until it passes (the last one is kept, healthy or
    not; its ``num_chains`` says which): the steep early checkpoints mix slowest, and more
    chains there cost less than more chains everywhere. A checkpoint's chain seeds depend on
    the seed and step only, so a replicate's estimates are those a dense run would give at
    the same checkpoints (up to float rounding)."""
    llc_cfg = cfg["llc"]
    chain_counts = [llc_cfg["num_chains"], *llc_cfg["rerun_chains"]]
    if any(a >= b for a, b in itertools.pairwise(chain_counts)):
        raise ValueError(
            f"llc.rerun_chains {llc_cfg['rerun_chains']} must rise above num_chains "
            f"{llc_cfg['num_chains']}: each re-estimate adds chains"
        )
    data = llc_data(cfg, seed)
    todo = block_steps(cfg, block, replicate)
    models = [load_model(states[step]) for step in todo]
    seeds = [chain_seed(seed, step) for step in todo]
    llcs, first = checkpoint_llcs(models, data, llc_cfg, seeds, device)
    traces = list(first)
    for chains in llc_cfg["rerun_chains"]:
        redo = [i for i, row in enumerate(llcs) if not row["healthy"]]
        if not redo:
            break
        unhealthy = [todo[i] for i in redo]
        log.info("seed %d: %d chains again at the unhealthy steps %s", seed, chains, unhealthy)
        again, again_traces = checkpoint_llcs(
            [models[i] for i in redo],
            data,
            {**llc_cfg, "num_chains": chains},
            [seeds[i] for i in redo],
            device,
        )
        for i, row, trace in zip(redo, again, again_traces, strict=True):
            llcs[i], traces[i] = row, trace
    padded = np.full((len(todo), chain_counts[-1], first.shape[-1]), np.nan, np.float32)
    rows = []
    for i, (step, row, trace) in enumerate(zip(todo, llcs, traces, strict=True)):
        padded[i, : len(trace)] = trace
        rows.append({"step": step, **row})
        log.info("seed %d step %d: LLC %.2f (%d chains)", seed, step, row["llc"], len(trace))
    return pd.DataFrame(rows), padded


# -- 3. probe ------------------------------------------------------------------------------


def layer_norm_collapse(model: ICLTransformer, tol: float) -> dict:
    """Fraction of LayerNorm gains with |gamma| < tol: the final LN and all LNs together."""
    norms = model.layer_norms()
    gains = {name: ln.weight.detach().abs() for name, ln in norms.items()}
    everything = torch.cat(list(gains.values()))
    return {
        "ln_final_collapse": float((gains["ln_final"] < tol).float().mean()),
        "ln_all_collapse": float((everything < tol).float().mean()),
    }


def probe_checkpoint(model: ICLTransformer, batch, tol: float) -> dict:
    """Behaviour and structure of one checkpoint on the evaluation batch."""
    xs, ys, _ = batch
    with torch.no_grad():
        preds = model(encode(xs, ys))
    by_pos = mse_by_position(preds, ys)
    row = {"loss": float(by_pos.mean()), "icl_score": float(by_pos[-1] - by_pos[0])}
    row["yhat_sq"] = float(preds.pow(2).mean())
    row.update({f"loss_pos{k + 1}": float(v) for k, v in enumerate(by_pos)})
    row.update(layer_norm_collapse(model, tol))
    svals = torch.linalg.svdvals(model.embed.weight.detach())
    row.update({f"embed_sv{i + 1}": float(v) for i, v in enumerate(svals)})
    return row


def probe_seed(cfg: dict, states: dict, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The probe table (one row per checkpoint of ``states``) and the outputs (T, B_ed, K)
    on the essential-dynamics batch, for the PCA."""
    batch = fixed_batch(cfg, cfg["eval_batch"], EVAL_SEED + seed)
    ed_xs, ed_ys, _ = fixed_batch(cfg, cfg["ed_batch"], ED_SEED + seed)
    rows, outputs = [], []
    for step in sorted(states):
        model = load_model(states[step])
        rows.append({"step": step, **probe_checkpoint(model, batch, cfg["collapse_tol"])})
        with torch.no_grad():
            outputs.append(model(encode(ed_xs, ed_ys)).numpy())
    return pd.DataFrame(rows), np.stack(outputs)


# -- 4. analyze ----------------------------------------------------------------------------


def baselines(cfg: dict, seed: int) -> pd.DataFrame:
    """Per-position MSE of the prior mean, OLS and ridge on the evaluation batch, plus the
    closed-form expected ridge MSE (K rows)."""
    xs, ys, _ = fixed_batch(cfg, cfg["eval_batch"], EVAL_SEED + seed)
    return pd.DataFrame(
        {
            "position": np.arange(1, xs.shape[1] + 1),
            "prior_mean": mse_by_position(torch.zeros_like(ys), ys).numpy(),
            "ols": mse_by_position(ols_predictions(xs, ys), ys).numpy(),
            "ridge": mse_by_position(ridge_predictions(xs, ys, cfg["noise_var"]), ys).numpy(),
            "ridge_expected": ridge_expected_mse(xs, cfg["noise_var"]).mean(0).numpy(),
        }
    )


def seed_table(llc_blocks: list[pd.DataFrame], probe: pd.DataFrame) -> pd.DataFrame:
    """One seed's LLC blocks joined with its probe table: one row per checkpoint, by step."""
    llc = pd.concat(llc_blocks)
    return probe.merge(llc, on="step", how="left").sort_values("step").reset_index(drop=True)


def nearest_index(steps: np.ndarray, step: float) -> int:
    """The checkpoint nearest to ``step`` in log(step + 1)."""
    return int(np.argmin(np.abs(np.log1p(steps) - np.log1p(step))))


def stage_metrics(
    table: pd.DataFrame, stages: list[stg.Stage], turns: list[int], ed_null: dict
) -> dict:
    """The numbers the claims read, for one seed. ``ed_null`` holds the keyword arguments
    of :func:`sltrepro.stages.random_walk_match_fractions` besides the steps."""
    steps = table["step"].to_numpy()
    kinds = stg.stage_string(stages)
    bounds = stg.boundaries(stages)
    out = {
        "stage_types": kinds,
        "num_stages": len(stages),
        "num_A_stages": kinds.count("A"),
        "num_B_stages": kinds.count("B"),
        "starts_AA": kinds.startswith("AA"),
        "stages_AABBA": kinds == "AABBA",
        "first_stage_type_A": kinds.startswith("A"),
    }
    for i, b in enumerate(bounds[:4]):
        out[f"boundary{i + 1}_step"] = b
    # E[y_hat^2] is smallest (the prior-mean predictor) at the end of the first stage; a
    # minimum at step 0 is the untrained model's, not a phase of training
    argmin = int(table["yhat_sq"].idxmin())
    icl = np.flatnonzero(table["icl_score"].to_numpy() < ICL_ONSET)
    out["yhat_sq_min_before_icl"] = bool(len(icl) and 0 < argmin < icl[0])
    # at step 0 the "prior-mean phase" would be the untrained model's, not a stage
    out["yhat_sq_min_is_init"] = argmin == 0
    if bounds:
        end1 = nearest_index(steps, bounds[0])
        out["yhat_sq_min_near_first_boundary"] = abs(argmin - end1) <= 1
        out["yhat_sq_at_first_boundary"] = float(table["yhat_sq"].iloc[end1])
    if len(bounds) >= 2:
        start2, end2 = nearest_index(steps, bounds[0]), nearest_index(steps, bounds[1])
        out["icl_score_start_stage2"] = float(table["icl_score"].iloc[start2])
        out["icl_score_end_stage2"] = float(table["icl_score"].iloc[end2])
    elif len(bounds) == 1:  # a second stage that runs to the end of training
        out["icl_score_start_stage2"] = float(table["icl_score"].iloc[end1])
        out["icl_score_end_stage2"] = float(table["icl_score"].iloc[-1])
    matched = stg.match_to_checkpoints(bounds, steps[turns], steps)
    out["ed_turning_points"] = len(turns)
    out["ed_matched_fraction"] = float(np.mean(matched)) if matched else None
    if matched:  # against random walks with as many checkpoints, read the same way
        chance = stg.random_walk_match_fractions(bounds, steps, **ed_null)
        out["ed_null_matched_fraction"] = float(chance.mean())
        out["ed_null_p"] = float(np.mean(chance >= out["ed_matched_fraction"]))
        out["ed_match_excess"] = out["ed_matched_fraction"] - out["ed_null_matched_fraction"]
    return out


@dataclass
class SeedAnalysis:
    """One seed's analysis: its metrics and the tables the figures draw."""

    metrics: dict
    table: pd.DataFrame
    """one row per checkpoint: probe columns and LLC columns"""
    fit: pd.DataFrame
    """the GP fit of LLC vs log step (log_step, llc_fit, llc_fit_std)"""
    essential_dynamics: pd.DataFrame
    """step, pc1..pcN, turning_point"""
    stages: dict
    """stages, GP kernel, turning-point steps, explained variance ratios"""


def llc_rows(cfg: dict, table: pd.DataFrame, replicate: bool, run: str) -> pd.DataFrame:
    """The rows of a run's checkpoint table that carry an LLC; raises ValueError unless
    they are exactly the run's :func:`llc_steps` (a missing or stray block)."""
    estimated = table[table["llc"].notna()].reset_index(drop=True)
    expected = llc_steps(cfg, replicate)
    if estimated["step"].tolist() != expected:
        missing = sorted(set(expected) - set(estimated["step"]))
        stray = sorted(set(estimated["step"]) - set(expected))
        raise ValueError(f"{run}: LLC checkpoints missing {missing}, unexpected {stray}")
    return estimated


def llc_sem(cfg: dict, table: pd.DataFrame) -> np.ndarray:
    """The standard error of each checkpoint's LLC: the spread of its chains over
    sqrt(chains), with the chains it ran (``num_chains``: more where it was re-estimated;
    tables without the column ran the config's)."""
    chains = table["num_chains"] if "num_chains" in table else cfg["llc"]["num_chains"]
    return table["llc_chain_std"].to_numpy() / np.sqrt(np.asarray(chains, dtype=float))


def _fit_table(fit: stg.LLCCurveFit) -> pd.DataFrame:
    """The GP fit as the table the figures read: log_step, llc_fit, llc_fit_std."""
    return pd.DataFrame({"log_step": fit.log_steps, "llc_fit": fit.mean, "llc_fit_std": fit.std})


def llc_stages(cfg: dict, table: pd.DataFrame) -> tuple[list[stg.Stage], stg.LLCCurveFit]:
    """The stages of one run's LLC curve (``table``: step, llc, llc_chain_std) and the GP
    fit they are read from."""
    st = cfg["stages"]
    return stg.detect_stages(
        table["step"].to_numpy(),
        table["llc"],
        plateau_tol=st["plateau_tol"],
        min_gap=st["min_gap"],
        min_change=st["min_change"],
        min_z=st["min_z"],
        llc_sem=llc_sem(cfg, table),
    )


def analyze_seed(
    cfg: dict, seed: int, table: pd.DataFrame, outputs: np.ndarray, base: pd.DataFrame, log
) -> SeedAnalysis:
    """Stages, essential dynamics and metrics of one seed (``table`` from :func:`seed_table`,
    ``outputs`` from :func:`probe_seed`). The LLC-based metrics read the checkpoints with an
    LLC (:func:`llc_steps`), the behavioural ones every checkpoint."""
    estimated = llc_rows(cfg, table, is_replicate(cfg, seed), f"seed {seed}")
    steps = table["step"].to_numpy()
    st = cfg["stages"]
    sem = llc_sem(cfg, estimated)
    stages, fit = llc_stages(cfg, estimated)
    ed = stg.essential_dynamics(outputs, n_components=st["ed_components"])
    turns = stg.turning_points(steps, ed.coords, smooth=st["ed_smooth"])
    fit_table = _fit_table(fit)
    coords = pd.DataFrame(ed.coords, columns=[f"pc{i + 1}" for i in range(ed.coords.shape[1])])
    coords.insert(0, "step", steps)
    coords["turning_point"] = np.isin(np.arange(len(steps)), turns)
    summary = {
        "stages": [asdict(s) for s in stages],
        "kernel": fit.kernel,
        "turning_point_steps": [int(steps[t]) for t in turns],
        "explained_variance_ratio": ed.explained_variance_ratio.tolist(),
    }
    log.info("seed %d stages %s at %s", seed, stg.stage_string(stages), stg.boundaries(stages))
    ed_null = dict(n_components=st["ed_components"], smooth=st["ed_smooth"], seed=ED_SEED + seed)
    out = stage_metrics(table, stages, turns, ed_null)
    final = table.iloc[-1]
    out["final_loss"] = float(final["loss"])
    out["final_loss_over_ridge"] = float(final["loss"] / base["ridge"].mean())
    out["llc_init"] = float(estimated["llc"].iloc[0])
    out["llc_final"] = float(estimated["llc"].iloc[-1])
    out["llc_max"] = float(estimated["llc"].max())
    out["llc_rise"] = out["llc_final"] - out["llc_init"]
    # one seed: the rise against the standard errors of its two estimates (summarize uses
    # the spread across seeds when there are several)
    out["llc_rise_se"] = float(np.hypot(sem[0], sem[-1]))
    out["llc_rise_z"] = _ratio(out["llc_rise"], out["llc_rise_se"])
    # the health verdict of every checkpoint's LLC estimate (sltrepro.llc_diagnostics)
    out["llc_healthy"] = bool(estimated["healthy"].astype(bool).all())
    labels = [f"step {s}" for s in estimated["step"]]
    out |= health_metrics(estimated.rename(columns={"llc": "llc_mean"}), "", labels=labels)
    out["llc_healthy_fraction"] = float(estimated["healthy"].astype(bool).mean())
    out["yhat_sq_min_ratio"] = float(table["yhat_sq"].min() / base["prior_mean"].mean())
    # the untrained model's value: the null the prior-mean claim must beat
    out["yhat_sq_init_ratio"] = float(table["yhat_sq"].iloc[0] / base["prior_mean"].mean())
    # the prior-mean phase is a drop of E[y_hat^2] from the untrained model's value while
    # the loss sits at E[y^2] (the prior-mean predictor's MSE on the same batch)
    argmin = int(table["yhat_sq"].idxmin())
    out["yhat_sq_drop"] = float(table["yhat_sq"].iloc[argmin] / table["yhat_sq"].iloc[0])
    prior = base["prior_mean"].mean()
    out["loss_at_yhat_sq_min_over_prior"] = float(table["loss"].iloc[argmin] / prior)
    out["loss_init_over_prior"] = float(table["loss"].iloc[0] / prior)
    out["final_icl_score"] = float(final["icl_score"])
    out["final_ln_final_collapse"] = float(final["ln_final_collapse"])
    return SeedAnalysis(out, table, fit_table, coords, summary)


def first_type_b_start(stages: list[dict]) -> float | None:
    """The step where the first type-B stage starts; None when the LLC never falls."""
    return next((s["start"] for s in stages if s["type"] == "B"), None)


def compare_lr_control(
    cfg: dict, main: pd.DataFrame, main_stages: list[dict], control: pd.DataFrame
) -> tuple[dict, dict, pd.DataFrame]:
    """The learning-rate control against the main run of the same seed (both tables from
    :func:`seed_table`, the control's LLC at the replicate checkpoints; ``main_stages`` the
    main run's stages as :func:`analyze_seed` writes them).

    Returns the metrics (unprefixed: ``lr_control_*`` and the main run's
    ``first_B_start``), the control's stage summary
    and its GP fit. A type-B stage that follows the schedule starts later by about the
    peak's shift (``lr_control_peak_shift``); one that follows the development starts at
    the same step. ``lr_control_llc_diff_z_max`` is the largest difference of the two
    curves at one of the control's checkpoints in standard errors (both estimates healthy).
    """
    if not np.array_equal(main["step"].to_numpy(), control["step"].to_numpy()):
        raise ValueError("the learning-rate control's checkpoints differ from the main run's")
    seed = cfg["seeds"][0]
    control = llc_rows(cfg, control, True, f"{LR_CONTROL_PREFIX}seed{seed}")
    main = main[main["step"].isin(control["step"])].reset_index(drop=True)
    stages, fit = llc_stages(cfg, control)
    summary = {"stages": [asdict(s) for s in stages], "kernel": fit.kernel}
    main_peak, control_peak = lr_peak_step(cfg), lr_peak_step(cfg, lr_control=True)
    main_b, control_b = first_type_b_start(main_stages), first_type_b_start(summary["stages"])
    out = {
        "lr_control_peak_step": control_peak,
        "lr_control_peak_shift": control_peak - main_peak,
        "lr_control_num_stages": len(stages),
        "lr_control_num_B_stages": stg.stage_string(stages).count("B"),
        "lr_control_first_B_start": control_b,
        "first_B_start": main_b,
        "lr_control_first_B_shift": None if None in (main_b, control_b) else control_b - main_b,
        "lr_control_llc_healthy_fraction": float(control["healthy"].astype(bool).mean()),
    }
    both = (main["healthy"].astype(bool) & control["healthy"].astype(bool)).to_numpy()
    diff = control["llc"].to_numpy() - main["llc"].to_numpy()
    z = np.abs(diff) / np.hypot(llc_sem(cfg, main), llc_sem(cfg, control))
    if both.any():
        worst = int(np.flatnonzero(both)[np.argmax(z[both])])
        out["lr_control_llc_diff_z_max"] = float(z[worst])
        out["lr_control_llc_diff_z_max_step"] = int(main["step"].iloc[worst])
        out["lr_control_llc_diff_at_z_max"] = float(diff[worst])
    fit_table = _fit_table(fit)
    return out, summary, fit_table


def _ratio(value: float, se: float) -> float | None:
    """value / se; None (no z-score) when the standard error is 0."""
    return value / se if se > 0 else None


def summarize(cfg: dict, per_seed: dict, base: pd.DataFrame) -> dict:
    """The regression half's metrics (keys prefixed ``regression_``) from ``per_seed``
    ({seed: metrics of :func:`analyze_seed`}, in the config's seed order) and the baselines.

    Metrics are those of the first seed; booleans also get ``<name>_all_seeds``. With
    several seeds the LLC rise is the mean over seeds and its z-score uses their spread
    (``llc_rise_seeds`` says how many; 1: the estimates' standard errors), and
    :func:`sltrepro.seeds.stage_order` adds the stage order and boundary spread.
    """
    seeds = cfg["seeds"]
    metrics = dict(per_seed[seeds[0]]) | all_seeds_flags([per_seed[s] for s in seeds])
    metrics["llc_rise_seeds"] = len(seeds)
    # why llc_healthy_all_seeds is False, for the claims' gate reasons
    metrics["llc_health_reasons_all_seeds"] = joined_reasons(
        {s: per_seed[s] for s in seeds}, "llc_health_reasons"
    )
    if len(seeds) > 1:
        rises = np.array([per_seed[s]["llc_rise"] for s in seeds])
        metrics["llc_rise"] = float(rises.mean())
        metrics["llc_rise_se"] = float(rises.std(ddof=1) / np.sqrt(len(rises)))
        metrics["llc_rise_z"] = _ratio(metrics["llc_rise"], metrics["llc_rise_se"])
        metrics |= stage_order([per_seed[s] for s in seeds])
    # the one-cycle schedule peaks half-way: a boundary there may be the schedule's doing
    metrics["lr_peak_step"] = lr_peak_step(cfg)
    metrics["num_params"] = num_params(ICLTransformer())
    metrics["ridge_mean_mse"] = float(base["ridge"].mean())
    metrics["ridge_mse_pos1"] = float(base["ridge"].iloc[0])
    metrics["ridge_mse_pos8"] = float(base["ridge"].iloc[-1])
    metrics["ridge_vs_closed_form"] = float(base["ridge"].mean() / base["ridge_expected"].mean())
    metrics["ols_mse_pos8"] = float(base["ols"].iloc[-1])
    metrics["prior_mean_mse"] = float(base["prior_mean"].mean())
    return {f"regression_{k}": v for k, v in metrics.items()}


# -- 5. metrics ----------------------------------------------------------------------------


def merge_metrics(parts: dict) -> dict:
    """Merge the halves' metrics ({name of the part: metrics}) into one flat dict."""
    merged = {}
    for where, part in parts.items():
        clash = set(part) & set(merged)
        if clash:
            raise ValueError(f"{where}: metric names already used by another part: {sorted(clash)}")
        merged.update(part)
    return merged
