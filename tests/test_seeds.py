"""Metrics over several seeds (sltrepro.seeds): every-seed flags, seed spread, stage order."""

import numpy as np
import pytest

from sltrepro.seeds import all_seeds_flags, spread, stage_order


def test_a_flag_holds_in_all_seeds_only_when_every_seed_shows_it():
    per_seed = [
        {"formed": True, "first": True, "late": False, "rise": 3.0},
        {"formed": True, "first": None, "late": True, "rise": 4.0},
        {"formed": True, "late": True},
    ]
    flags = all_seeds_flags(per_seed)
    # the booleans of the first seed only; a None or a missing key is not "shown"
    assert flags == {"formed_all_seeds": True, "first_all_seeds": False, "late_all_seeds": False}


def test_spread_over_seeds_and_a_seed_without_a_value():
    per_seed = [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": None}, {"x": 8.0, "y": 5.0}]
    out = spread(per_seed, ["x", "y"])
    assert out["x_seed_mean"] == 4.0 and out["x_seed_min"] == 1.0 and out["x_seed_max"] == 8.0
    assert out["x_seed_sd"] == pytest.approx(np.std([1, 3, 8], ddof=1))
    # one seed without a value: no spread (a band on the worst seed cannot pass on the others)
    assert all(out[f"y_seed_{s}"] is None for s in ("mean", "sd", "min", "max"))
    one = spread([{"x": 2.0}], ["x"])
    assert one["x_seed_mean"] == 2.0 and one["x_seed_sd"] is None


def test_stage_order_across_seeds_needs_two_stages_and_one_order():
    def seed(types, bounds):
        return {
            "stage_types": types,
            "num_stages": len(types),
            **{f"boundary{i + 1}_step": b for i, b in enumerate(bounds)},
        }

    same = stage_order([seed("AAB", [900, 40_000]), seed("AAB", [1_100, 30_000])] * 2)
    assert same["stage_order_agrees"] is True
    assert same["stage_types_by_seed"] == "AAB, AAB, AAB, AAB"
    assert same["boundary1_step_seed_mean"] == 1_000
    assert same["boundary1_step_seed_min"] == 900 and same["boundary2_step_seed_max"] == 40_000
    assert same["boundary2_step_seed_sd"] == pytest.approx(np.std([40e3, 30e3] * 2, ddof=1))
    # one rising trend in every seed: the same string, but no order to agree on
    single = stage_order([seed("A", [])] * 3)
    assert single["stage_order_agrees"] is False
    assert not any(k.startswith("boundary") for k in single)
    mixed = stage_order([seed("AAB", [900, 40_000]), seed("AB", [2_000]), seed("", [])])
    assert mixed["stage_order_agrees"] is False
    assert mixed["stage_types_by_seed"] == "AAB, AB, -"
    assert (mixed["num_stages_seed_min"], mixed["num_stages_seed_max"]) == (0, 3)
