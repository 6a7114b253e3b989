"""The LM half's per-head weight-refined LLC (icl_landscape head_llc): the checkpoint and
head schedules, the head types, and the claims' statistics on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from sltrepro.papers.icl_landscape import head_llc, lm_pipeline

CFG = {
    "n_layers": 2,
    "n_heads": 4,
    "steps": 1000,
    "num_log_checkpoints": 7,
    "num_linear_checkpoints": 3,
    "head_scores": {"formed_at": 0.3},
    "head_llc": {"blocks": 3, "checkpoint_every": 4},
}


def test_head_llc_steps_take_every_kth_checkpoint_and_always_the_last():
    steps = lm_pipeline.checkpoint_steps(CFG)
    picked = head_llc.head_llc_steps(CFG)
    assert picked[0] == steps[0] == 0 and picked[-1] == steps[-1]
    assert picked[:-1] == steps[::4][: len(picked) - 1]
    every = {**CFG, "head_llc": {**CFG["head_llc"], "checkpoint_every": 1}}
    assert head_llc.head_llc_steps(every) == steps


def test_head_blocks_deal_every_head_to_exactly_one_block():
    blocks = head_llc.head_blocks(CFG)
    assert len(blocks) == 3
    dealt = [h for block in blocks for h in block]
    assert sorted(dealt) == head_llc.all_heads(CFG) and len(dealt) == 8


def checkpoints(induction_final, prev_final):
    """A two-row LM analysis table: scores at step 0 (all at chance) and at the last step."""
    rows = []
    for step, ind, prev in ((0, [0.01] * 4, [0.05] * 4), (1000, induction_final, prev_final)):
        row = {"step": step}
        row.update({f"induction_l1h{h}": v for h, v in enumerate(ind)})
        row.update({f"prev_l0h{h}": v for h, v in enumerate(prev)})
        rows.append(row)
    return pd.DataFrame(rows)


def test_head_types_name_the_best_formed_head_of_each_kind():
    types = head_llc.head_types(checkpoints([0.1, 0.2, 0.6, 0.4], [0.5, 0.1, 0.1, 0.1]), CFG)
    assert types[(1, 2)] == types[(1, 3)] == "induction" and types[(0, 0)] == "previous-token"
    assert sum(t == "other" for t in types.values()) == 5
    unformed = head_llc.head_types(checkpoints([0.1, 0.2, 0.25, 0.1], [0.2] * 4), CFG)
    assert set(unformed.values()) == {"other"}


def test_heterogeneity_p_separates_equal_from_different_estimates():
    errors = np.full(4, 0.5)
    assert head_llc.heterogeneity_p(np.full(4, 3.0), errors) == pytest.approx(1.0)
    assert head_llc.heterogeneity_p(np.array([1.0, 3.0, 5.0, 7.0]), errors) < 1e-6
    # within their errors: Q = 0.5 on 3 degrees of freedom
    assert head_llc.heterogeneity_p(np.array([3.0, 3.5, 3.0, 3.0]), errors) > 0.5
    assert np.isnan(head_llc.heterogeneity_p(np.array([1.0, np.nan, 2, 3]), errors))
    assert np.isnan(head_llc.heterogeneity_p(np.ones(4), np.array([0.5, 0.0, 0.5, 0.5])))


def estimates(values_by_step, std=0.2, healthy=True):
    """A head-LLC table: {step: {(layer, head): wrLLC}}, 4 chains, none diverged."""
    rows = []
    for step, values in values_by_step.items():
        for (layer, head), value in values.items():
            rows.append(
                {
                    "step": step,
                    "layer": layer,
                    "head": head,
                    "wrllc": value,
                    "llc_mean": value,
                    "llc_std": std,
                    "llc_num_chains": 4,
                    "llc_diverged_chains": 0,
                    "llc_healthy": healthy,
                    "llc_health_reasons": "" if healthy else "bulk ESS 20 < 100",
                }
            )
    return pd.DataFrame(rows)


def plain_of(final, factor=0.5):
    """The plain-text estimates at the last step: every head's wrLLC times ``factor``."""
    return estimates({1000: {key: v * factor for key, v in final.items()}})


def layered(last_layer, first_layer=(1.0, 1.0, 1.0, 1.0)):
    return {
        **{(0, h): 2.0 for h in range(4)},
        **{(1, h): v for h, v in enumerate(last_layer)},
    }, {**{(0, h): 1.0 for h in range(4)}, **{(1, h): v for h, v in enumerate(first_layer)}}


def test_summarize_reads_the_induction_gap_and_the_differentiation():
    final, first = layered([5.0, 5.2, 2.0, 4.8])
    metrics, table, _ = head_llc.summarize(
        estimates({0: first, 1000: final}),
        plain_of(final),
        checkpoints([0.1, 0.2, 0.6, 0.2], [0.5, 0.1, 0.1, 0.1]),
        CFG,
    )
    assert metrics["lm_wrllc_induction_heads"] == "l1h2"
    assert metrics["lm_wrllc_induction_gap"] == pytest.approx(2.0 - 5.0)
    se = np.sqrt(0.1**2 + 3 * 0.1**2 / 9)  # chains' std 0.2 over sqrt(4), and the mean of three
    assert metrics["lm_wrllc_induction_gap_z"] == pytest.approx(-3.0 / se)
    assert metrics["lm_wrllc_induction_gap_shuffled_p"] == 0.25  # the lowest of four
    assert metrics["lm_wrllc_last_layer_heterogeneity_p_final"] < 1e-6
    assert metrics["lm_wrllc_last_layer_heterogeneity_p_first"] == pytest.approx(1.0)
    assert metrics["lm_head_claims_llc_healthy"] is True and metrics["lm_head_llc_healthy"]
    assert table.loc[(table["layer"] == 1) & (table["head"] == 2), "type"].eq("induction").all()
    assert list(table.columns[:4]) == ["step", "layer", "head", "type"]


def test_two_induction_heads_are_compared_as_a_group_against_every_pair():
    final, first = layered([5.0, 2.2, 2.0, 4.8])
    metrics, _, _ = head_llc.summarize(
        estimates({0: first, 1000: final}),
        plain_of(final),
        checkpoints([0.1, 0.5, 0.6, 0.2], [0.1] * 4),
        CFG,
    )
    assert metrics["lm_wrllc_induction_heads"] == "l1h1 l1h2"
    assert metrics["lm_wrllc_induction_gap"] == pytest.approx(2.1 - 4.9)
    se = np.sqrt(2 * 0.1**2 / 4 + 2 * 0.1**2 / 4)
    assert metrics["lm_wrllc_induction_gap_z"] == pytest.approx(-2.8 / se)
    assert metrics["lm_wrllc_induction_gap_shuffled_p"] == pytest.approx(1 / 6)
    # the other way round: the induction heads are the highest pair, the last of six
    metrics, _, _ = head_llc.summarize(
        estimates({0: first, 1000: final}),
        plain_of(final),
        checkpoints([0.5, 0.1, 0.1, 0.6], [0.1] * 4),
        CFG,
    )
    assert metrics["lm_wrllc_induction_gap_z"] > 2
    assert metrics["lm_wrllc_induction_gap_shuffled_p"] == pytest.approx(1.0)


def test_summarize_without_an_induction_head_leaves_the_gap_missing():
    final, first = layered([5.0, 5.2, 2.0, 4.8])
    metrics, _, _ = head_llc.summarize(
        estimates({0: first, 1000: final}), plain_of(final), checkpoints([0.1] * 4, [0.1] * 4), CFG
    )
    assert metrics["lm_wrllc_induction_heads"] is None
    assert metrics["lm_wrllc_induction_gap_z"] is None
    assert metrics["lm_wrllc_last_layer_heterogeneity_p_final"] < 1e-6


def test_only_an_unhealthy_estimate_the_claims_read_closes_their_gate():
    final, first = layered([5.0, 5.2, 2.0, 4.8])
    table = estimates({0: first, 1000: final})
    scores = checkpoints([0.1, 0.2, 0.6, 0.2], [0.1] * 4)

    def gate(unhealthy):
        table["llc_healthy"] = ~unhealthy
        table["llc_health_reasons"] = np.where(unhealthy, "bulk ESS 20 < 100", "")
        return head_llc.summarize(table, plain_of(final), scores, CFG)[0]

    at_init = gate((table["step"] == 0).to_numpy())  # wrLLC ~0 at step 0 fails the MCSE check
    assert at_init["lm_head_claims_llc_healthy"] is True
    assert at_init["lm_head_llc_healthy"] is False
    read = (table["step"] == 1000) & (table["layer"] == 1) & (table["head"] == 3)
    metrics = gate(read.to_numpy())
    assert metrics["lm_head_claims_llc_healthy"] is False
    assert "l1h3 step 1000" in metrics["lm_head_claims_llc_health_reasons"]


def test_data_refined_compares_each_heads_spans_and_plain_text_estimates():
    final, first = layered([5.0, 5.2, 2.0, 4.8])
    plain = {key: 1.0 if key == (1, 2) else 4.0 for key in final}  # only l1h2 drops to 1
    metrics, _, refined = head_llc.summarize(
        estimates({0: first, 1000: final}),
        estimates({1000: plain}, std=0.4),
        checkpoints([0.1, 0.2, 0.6, 0.2], [0.1] * 4),
        CFG,
    )
    row = refined.set_index(["layer", "head"]).loc[(1, 2)]
    assert row["type"] == "induction" and row["wrllc_spans"] == 2.0 and row["wrllc_plain"] == 1.0
    assert row["se_spans"] == pytest.approx(0.1) and row["se_plain"] == pytest.approx(0.2)
    assert metrics["lm_drllc_spans_over_plain_induction"] == pytest.approx(2.0)
    assert metrics["lm_drllc_spans_over_plain_other"] == pytest.approx((5.0 + 5.2 + 4.8) / 12)
    assert len(refined) == 8 and metrics["lm_head_plain_llc_estimates"] == 8
