"""Metrics over several seeds of one experiment: what every seed shows, and how far the
seeds spread.

A DAG that trains one model under several seeds analyses each seed alone (a flat dict of
metrics per seed, the same keys in each) and reads them together here, so that a claim can
say "in every seed" and a band can rest on the measured seed spread. Plain data in, plain
data out.
"""

from __future__ import annotations

import numpy as np


def all_seeds_flags(per_seed: list[dict]) -> dict:
    """``<key>_all_seeds`` for every boolean of the first seed's metrics: True when the key is
    True in every seed (missing or None in a seed counts as not shown)."""
    return {
        f"{key}_all_seeds": all(metrics.get(key) is True for metrics in per_seed)
        for key, value in per_seed[0].items()
        if isinstance(value, bool)
    }


def spread(per_seed: list[dict], keys) -> dict:
    """``<key>_seed_{mean,sd,min,max}`` of each numeric metric in ``keys``: over the seeds'
    values (sd with ddof 1; None with one seed). All four are None when a seed has no value
    (None), so a band on the worst seed cannot pass on the seeds that do have one."""
    out = {}
    for key in keys:
        values = [metrics.get(key) for metrics in per_seed]
        if any(v is None for v in values):
            out |= {f"{key}_seed_{s}": None for s in ("mean", "sd", "min", "max")}
            continue
        array = np.asarray(values, dtype=float)
        out[f"{key}_seed_mean"] = float(array.mean())
        out[f"{key}_seed_sd"] = float(array.std(ddof=1)) if len(array) > 1 else None
        out[f"{key}_seed_min"] = float(array.min())
        out[f"{key}_seed_max"] = float(array.max())
    return out


def stage_order(per_seed: list[dict]) -> dict:
    """The detected stage order over the seeds, from each seed's ``stage_types`` (e.g.
    "AAB"), ``num_stages`` and ``boundary<i>_step``: ``stage_order_agrees`` is True when every
    seed has the same sequence of stage types and at least two stages (one stage in each has
    no order to agree on); ``boundary<i>_step_seed_{mean,sd,min,max}`` for each of the first
    four boundaries every seed has."""
    types = [m["stage_types"] for m in per_seed]
    counts = [m["num_stages"] for m in per_seed]
    out = {
        "stage_types_by_seed": ", ".join(t or "-" for t in types),
        "num_stages_seed_min": min(counts),
        "num_stages_seed_max": max(counts),
        "stage_order_agrees": len(set(types)) == 1 and min(counts) >= 2,
    }
    boundaries = [f"boundary{i}_step" for i in range(1, min(min(counts), 5))]
    return out | spread(per_seed, boundaries)


def joined_reasons(per_seed: dict[int, dict], key: str) -> str:
    """The ``key`` strings of the seeds that have one ({seed: metrics}), as "seed S: ...;
    ...": why a gate over every seed fails, for the claims' reasons."""
    return "; ".join(f"seed {s}: {m[key]}" for s, m in per_seed.items() if m.get(key))
