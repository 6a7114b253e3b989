from fractions import Fraction

import pytest

from sltrepro.theory import (
    dln_learning_coefficient,
    isotropic_lambda,
    normal_crossing_lambda,
    regular_lambda,
    rrr_learning_coefficient,
)

# PAPERS.md P1, worked values: widths input-first, rank -> (lambda, multiplicity)
WORKED = [
    ([5, 3, 5], 0, Fraction(13, 2), 2),
    ([5, 4, 5], 0, 8, 1),
    ([3, 2, 3], 2, 4, 1),
    ([10, 20, 20, 10], 5, 50, 1),
    ([5, 5, 5, 5, 5], 2, 11, 4),
    ([100] * 11, 0, 2750, 1),
    ([455, 395, 125, 350, 277, 261, 297], 28, Fraction(41093, 2), 3),
]


@pytest.mark.parametrize(("widths", "rank", "lam", "mult"), WORKED)
def test_dln_worked_values(widths, rank, lam, mult):
    assert dln_learning_coefficient(widths, rank) == (lam, mult)


@pytest.mark.parametrize(
    ("widths", "lams"),
    [([5, 3, 3, 5], [4.5, 6.5, 8.5, 10.5]), ([10, 3, 3, 3, 10], [3.5, 11, 18.5, 25.5])],
)
def test_dln_bottleneck_rank_dependence(widths, lams):
    assert [float(dln_learning_coefficient(widths, r)[0]) for r in range(4)] == lams


def test_no_bottleneck_is_constant_in_rank():
    # "No bottleneck" needs every hidden width >= input + output (as M + N <= H + r in the
    # two-layer formula); merely >= max(input, output) is not enough: [4, 9, 8, 6] at r = 0
    # has lambda 23/2, not 12.
    assert dln_learning_coefficient([4, 9, 8, 6], 0)[0] == Fraction(23, 2)
    widths = [4, 10, 12, 6]
    assert {dln_learning_coefficient(widths, r)[0] for r in range(5)} == {Fraction(4 * 6, 2)}


def test_deep_formula_agrees_with_rrr_on_every_small_case():
    for m in range(1, 8):
        for h in range(1, 8):
            for n in range(1, 8):
                for r in range(min(m, h, n) + 1):
                    assert dln_learning_coefficient([m, h, n], r) == rrr_learning_coefficient(
                        m, h, n, r
                    ), (m, h, n, r)


def test_single_layer_is_regular():
    assert dln_learning_coefficient([3, 4], 2) == regular_lambda(12)


@pytest.mark.parametrize(
    ("widths", "rank", "message"),
    [([5, 3, 5], 4, "rank"), ([5, 0, 5], 0, "width"), ([5], 0, "two widths"), ([2, 2], -1, "rank")],
)
def test_dln_bad_input(widths, rank, message):
    with pytest.raises(ValueError, match=message):
        dln_learning_coefficient(widths, rank)


def test_normal_crossing_table1_models():
    # Lau et al. Table 1: p(w) = w1 w2^3, w1 w2^2, w2, w1, so K ∝ p^2
    assert normal_crossing_lambda([1, 3]) == (Fraction(1, 6), 1)
    assert normal_crossing_lambda([1, 2]) == (Fraction(1, 4), 1)
    assert normal_crossing_lambda([0, 1]) == (Fraction(1, 2), 1)
    assert normal_crossing_lambda([1, 1]) == (Fraction(1, 2), 2)
    with pytest.raises(ValueError):
        normal_crossing_lambda([0, 0])


def test_regular_and_isotropic():
    assert regular_lambda(6) == (3, 1)
    assert isotropic_lambda(4, 2) == 1


def test_rank_count_lambda_is_the_trivial_predictor():
    from sltrepro.theory import rank_count_lambda

    # equal to Aoyagi's lambda at full rank of the bottleneck, below it elsewhere
    assert (
        rank_count_lambda([10, 3, 3, 3, 10], 3) == dln_learning_coefficient([10, 3, 3, 3, 10], 3)[0]
    )
    assert rank_count_lambda([10, 3, 3, 3, 10], 1) == Fraction(19, 2)
    assert dln_learning_coefficient([10, 3, 3, 3, 10], 1)[0] == 11
    assert rank_count_lambda([5, 5], 5) == Fraction(25, 2)
