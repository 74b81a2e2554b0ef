"""tvn_tf/search/statistics.py: the sign test, bootstrap intervals, Spearman, best-so-far bands."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tvn_tf.search import statistics


@pytest.mark.parametrize(
    "differences, p",
    [
        ([0.1] * 5, 0.0625),  # 5 wins, 0 losses: 2 / 2**5.
        ([0.1] * 10, 2 / 1024),
        ([1, 1, 1, 1, -1], 0.375),  # 2 * (1 + 5) / 32.
        ([0.1, 0.05, 0.2, 0.0, 0.15], 0.125),  # The tie is dropped: 4 wins of 4.
        ([1, -1], 1.0),  # 2 * 3/4, capped at 1.
        ([0.0, 0.0], 1.0),  # Only ties: no evidence either way.
        ([], 1.0),
    ],
)
def test_sign_test_is_the_exact_two_sided_binomial_test(differences, p):
    assert statistics.sign_test(differences) == pytest.approx(p)


def test_sign_test_is_symmetric():
    assert statistics.sign_test([1, 1, 1, -1]) == statistics.sign_test([-1, -1, -1, 1])


def test_ranks_average_ties():
    assert statistics.ranks([5, 1, 5]).tolist() == [2.5, 1.0, 2.5]
    assert statistics.ranks([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    assert statistics.ranks([0.2, 0.1, 0.3]).tolist() == [2.0, 1.0, 3.0]


@pytest.mark.parametrize(
    "x, y, rho",
    [
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], 0.8),  # No ties: 1 - 6 * 4 / (5 * 24).
        ([1, 2, 3, 4], [1, 4, 9, 16], 1.0),  # Monotone, not linear.
        ([1, 2, 3, 4], [16, 9, 4, 1], -1.0),
        # Ties in y: ranks (1, 2, 3.5, 5, 3.5), so 8 / sqrt(10 * 9.5).
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 8 / math.sqrt(95)),
    ],
)
def test_spearman_known_values(x, y, rho):
    assert statistics.spearman(x, y) == pytest.approx(rho)


def test_spearman_is_undefined_without_a_ranking_and_refuses_unequal_lengths():
    assert math.isnan(statistics.spearman([1, 2, 3], [4, 4, 4]))
    assert math.isnan(statistics.spearman([1], [2]))
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        statistics.spearman([1, 2, 3], [1, 2])


def test_bootstrap_interval_contains_the_mean_and_is_deterministic_for_a_seed():
    values = [0.1, 0.25, 0.3, 0.45, 0.5, 0.2]
    low, high = statistics.bootstrap_interval(values, np.mean, resamples=2000, seed=3)
    assert low < np.mean(values) < high
    assert min(values) <= low and high <= max(values)
    assert statistics.bootstrap_interval(values, np.mean, resamples=2000, seed=3) == (low, high)
    assert statistics.bootstrap_interval(values, np.mean, resamples=2000, seed=4) != (low, high)
    narrow = statistics.bootstrap_interval(values, np.mean, 0.5, resamples=2000, seed=3)
    assert low <= narrow[0] <= narrow[1] <= high
    assert statistics.bootstrap_interval([0.4] * 5) == (0.4, 0.4)


def test_bootstrap_interval_refuses_nothing_and_a_bad_confidence():
    with pytest.raises(ValueError, match="no values"):
        statistics.bootstrap_interval([])
    with pytest.raises(ValueError, match="confidence=1.5"):
        statistics.bootstrap_interval([1.0, 2.0], confidence=1.5)


def test_spearman_interval_resamples_pairs_and_skips_undefined_resamples():
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # Monotone pairs: every resample with two distinct values correlates perfectly,
    # and the resamples of one repeated pair (no ranking) are left out.
    assert statistics.spearman_interval(x, [v**2 for v in x], resamples=500) == (1.0, 1.0)
    low, high = statistics.spearman_interval(x, [0.3, 0.1, 0.5, 0.2, 0.6, 0.4], resamples=500)
    assert -1.0 <= low < statistics.spearman(x, [0.3, 0.1, 0.5, 0.2, 0.6, 0.4]) < high <= 1.0


def test_paired_comparison_of_two_algorithms_over_seeds():
    tournament = [0.9, 0.8, 0.7, 0.6, 0.5, None]
    random = [0.8, 0.8, 0.6, 0.7, 0.4, 0.3]  # The last seed has no pair: left out.
    result = statistics.paired_comparison(tournament, random, resamples=1000)
    assert result["n"] == 5
    assert (result["wins"], result["losses"], result["ties"]) == (3, 1, 1)
    assert result["mean_difference"] == pytest.approx(0.04)
    assert result["sign_test_p"] == pytest.approx(0.625)  # 3 of 4 non-tied: 2 * 5 / 16.
    low, high = result["interval"]
    assert low <= 0.04 <= high and result["confidence"] == 0.95
    assert statistics.paired_comparison(tournament, random, resamples=1000) == result


def test_paired_comparison_without_pairs():
    result = statistics.paired_comparison([None, 0.5], [0.4, None])
    assert result["n"] == 0 and result["mean_difference"] is None and result["interval"] is None
    assert result["sign_test_p"] == 1.0


def test_best_so_far_band_over_runs_of_different_lengths():
    x, median, low, high = statistics.best_so_far_band([[0.1, 0.3, 0.2], [0.2], []])
    assert x.tolist() == [1, 2, 3]
    # The one-candidate run keeps its best (0.2) after its budget is spent.
    assert median.tolist() == pytest.approx([0.15, 0.25, 0.25])
    assert low.tolist() == pytest.approx([0.1, 0.2, 0.2])
    assert high.tolist() == pytest.approx([0.2, 0.3, 0.3])
    assert all(len(a) == 0 for a in statistics.best_so_far_band([[], []]))
