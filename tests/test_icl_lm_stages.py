"""The LM half's stage-order metrics (icl_landscape lm_pipeline): when the induction score
crosses its level against the LLC stages and the other scores, on hand-made curves."""

import numpy as np
import pytest

from sltrepro.papers.icl_landscape import lm_pipeline
from sltrepro.stages import Stage

STEPS = np.array([0, 10, 100, 300, 1000, 2000, 4000, 8000], dtype=float)
CFG = {"head_scores": {"formed_at": 0.3}}


def three_stages(b1=100.0, b2=2000.0):
    return [
        Stage(0.0, b1, "A", 1.0, 5.0),
        Stage(b1, b2, "B", 5.0, 4.0),
        Stage(b2, 8000.0, "A", 4.0, 9.0),
    ]


def metrics(induction, prev, bigram=None, icl=None, found=None):
    bigram = np.array([6, 5, 4, 4.5, 5, 5, 5, 5.0]) if bigram is None else np.asarray(bigram)
    icl = np.linspace(0.0, -0.1, len(STEPS)) if icl is None else np.asarray(icl)
    return lm_pipeline.stage_order_metrics(
        STEPS,
        np.asarray(induction, dtype=float),
        np.asarray(prev, dtype=float),
        bigram,
        icl,
        three_stages() if found is None else found,
        CFG,
    )


def test_stage_of_puts_boundaries_in_the_earlier_stage():
    found = three_stages()
    assert [lm_pipeline.stage_of(s, found) for s in (0, 50, 100, 101, 2000, 8000)] == [
        0,
        0,
        0,
        1,
        1,
        2,
    ]


def test_induction_after_prev_token_in_a_late_stage():
    induction = [0.01, 0.01, 0.01, 0.01, 0.02, 0.03, 0.5, 0.6]  # crosses 0.3 in 2000-4000
    prev = [0.04, 0.05, 0.1, 0.4, 0.6, 0.7, 0.7, 0.7]  # crosses in 100-300
    icl = [0.0, 0.0, 0.0, 0.0, -0.01, -0.02, -0.12, -0.15]
    out = metrics(induction, prev, icl=icl)
    assert out["lm_induction_cross_stage"] == 2
    assert 2000 < out["lm_induction_cross_step"] < 4000
    assert 100 < out["lm_prev_token_cross_step"] < 300
    assert out["lm_induction_score_before_cross_stage"] == pytest.approx(0.03)  # up to 2000
    assert out["lm_icl_score_change_over_induction_stage"] == pytest.approx(-0.15 + 0.02)
    assert out["lm_bigram_min_before_induction_stage"] is True  # minimum at step 100, stage 0
    assert out["lm_prev_token_before_induction"] is True


def test_nulls_fail_each_claim():
    # no induction head: every induction metric is missing
    flat = metrics([0.01] * 8, [0.5] * 8)
    assert flat["lm_induction_cross_step"] is None
    assert flat["lm_induction_cross_stage"] is None
    assert flat["lm_prev_token_before_induction"] is None
    # a score that climbs from the start stands well above chance when its stage begins
    gradual = metrics([0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.4], [0.5] * 8)
    assert gradual["lm_induction_score_before_cross_stage"] == pytest.approx(0.25)
    # previous-token heads that form after the induction head, or never
    late_prev = metrics([0.01] * 6 + [0.5, 0.6], [0.04] * 7 + [0.5])
    assert late_prev["lm_prev_token_before_induction"] is False
    never = metrics([0.01] * 6 + [0.5, 0.6], [0.04] * 8)
    assert never["lm_prev_token_cross_step"] is None
    assert never["lm_prev_token_before_induction"] is False
    # a bigram score that keeps falling has its minimum in the last stage
    falling = metrics([0.01] * 6 + [0.5, 0.6], [0.5] * 8, bigram=np.linspace(6, 3, 8))
    assert falling["lm_bigram_min_before_induction_stage"] is False


def test_crossing_in_the_first_stage_has_no_before():
    out = metrics([0.01, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], [0.5] * 8)
    assert out["lm_induction_cross_stage"] == 0
    assert out["lm_induction_score_before_cross_stage"] is None
    assert out["lm_bigram_min_before_induction_stage"] is False


def seed_metrics(types: str, cross, prev_first: bool, healthy: bool = True) -> dict:
    """The per-seed metrics across_seeds reads, of a seed with stages ``types``."""
    bounds = [1000.0 * (i + 1) for i in range(len(types) - 1)]
    return {
        "lm_num_stages": len(types),
        "lm_stage_types": types,
        **{f"lm_boundary{i + 1}_step": b for i, b in enumerate(bounds)},
        "lm_induction_cross_step": cross,
        "lm_prev_token_before_induction": prev_first,
        "lm_llc_healthy": healthy,
        "lm_llc_health_reasons": "" if healthy else "1 of 9 failed: R-hat 1.3",
        "lm_llc_final": 60.0,
    }


def test_across_seeds_claims_only_what_every_seed_shows():
    out = lm_pipeline.across_seeds(
        {0: seed_metrics("AAB", 7000.0, True), 5: seed_metrics("AAB", 9000.0, False)}
    )
    assert out["lm_seeds"] == 2
    assert out["lm_prev_token_before_induction"] is True  # the reference seed's
    assert out["lm_prev_token_before_induction_all_seeds"] is False
    assert out["lm_induction_cross_step_seed_mean"] == pytest.approx(8000.0)
    assert out["lm_induction_cross_step_seed_sd"] == pytest.approx(np.sqrt(2e6))
    assert out["lm_stage_order_agrees"] is True
    assert out["lm_boundary2_step_seed_max"] == 2000.0
    assert out["lm_llc_healthy_all_seeds"] is True
    assert out["lm_llc_health_reasons_all_seeds"] == ""


def test_across_seeds_fails_on_one_disagreeing_or_unhealthy_seed():
    out = lm_pipeline.across_seeds(
        {
            0: seed_metrics("AAB", 7000.0, True),
            1: seed_metrics("AB", None, True, healthy=False),
        }
    )
    assert out["lm_stage_order_agrees"] is False
    assert out["lm_stage_types_by_seed"] == "AAB, AB"
    # a seed without an induction head leaves no spread to claim on
    assert out["lm_induction_cross_step_seed_max"] is None
    assert out["lm_llc_healthy_all_seeds"] is False
    assert out["lm_llc_health_reasons_all_seeds"] == "seed 1: 1 of 9 failed: R-hat 1.3"
    # one stage in each seed is no order
    single = lm_pipeline.across_seeds({0: seed_metrics("A", 7000.0, True)})
    assert single["lm_stage_order_agrees"] is False
    assert single["lm_llc_final_seed_sd"] is None
