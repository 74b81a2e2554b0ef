"""Statistics for comparing searches over a few seeds, and for checking the proxy.

    p = sign_test([0.1, 0.05, 0.2, 0.0, 0.15])          # 4 wins, 1 tie: p = 0.125
    low, high = bootstrap_interval(values, np.mean)     # 95% percentile interval
    comparison = paired_comparison(tournament, random)  # per search seed, paired
    rho = spearman(proxy_fitness, test_accuracy)
    x, median, low, high = best_so_far_band(runs)      # the curves of several searches

A search benchmark has few seeds (five searches per algorithm take hours), and
the best accuracy a search finds is bounded, often tied and skewed, so nothing
here assumes a normal distribution: the sign test uses only the direction of
each paired difference, and the bootstrap resamples the observed values. Each
says something the other does not: the sign test whether one algorithm wins
more often than chance, the bootstrap interval by how much, with its
uncertainty. With five pairs the smallest two-sided sign-test p is 0.0625, and
a percentile bootstrap interval of five values is narrower than it should be:
read both as a description of these seeds, not as a significance verdict.

This module loads neither TensorFlow nor matplotlib: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def sign_test(differences: Sequence[float]) -> float:
    """The two-sided exact sign test of paired differences: p under "either side as likely".

    Ties (zero differences) carry no direction and are dropped. No
    distribution is assumed beyond independent pairs: with a handful of seeds
    and bounded, tied accuracies, a t-test's normality cannot be checked.

    Args:
      differences: One difference per pair (a - b).

    Returns:
      The p-value, min(1, 2 * P(X <= min(wins, losses))) for X ~ Binomial(n, 1/2),
      n the number of non-zero differences; 1.0 when all are ties.
    """
    values = np.asarray(differences, dtype=float)
    wins, losses = int(np.sum(values > 0)), int(np.sum(values < 0))
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def bootstrap_interval(
    values,
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` over `values`.

    Resamples the observations with replacement (rows, when `values` is 2-D:
    pairs stay together) and takes the central `confidence` share of the
    statistic's values; no distribution is assumed. Resamples where the
    statistic is undefined (NaN, e.g. a rank correlation of tied values) are
    left out. Deterministic for a given `seed`.

    Args:
      values: The observations, shape (n,) or (n, k).
      statistic: Maps an array of resampled observations to one number.
      confidence: The interval's coverage, in (0, 1).
      resamples: How many bootstrap resamples.
      seed: The resampling's seed.

    Returns:
      (low, high); (nan, nan) when the statistic is undefined on every resample.

    Raises:
      ValueError: no observations, or `confidence` outside (0, 1).
    """
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        raise ValueError("bootstrap_interval: no values.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap_interval: confidence={confidence}; expected (0, 1).")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(resamples, len(data)))
    stats = np.array([statistic(data[p]) for p in picks], dtype=float)
    stats = stats[~np.isnan(stats)]
    if not len(stats):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_comparison(
    a: Sequence[float | None],
    b: Sequence[float | None],
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """Two algorithms over the same seeds: a - b per seed, its mean, interval and sign test.

    Pairs where either value is missing (None: that search found nothing, or
    was not retrained) are left out.

    Returns:
      "n" (pairs), "mean_difference", "interval" ([low, high], the bootstrap
      interval of the mean difference; None without pairs), "confidence",
      "wins" (a > b), "losses", "ties" and "sign_test_p".
    """
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    differences = np.array([x - y for x, y in pairs], dtype=float)
    result: dict[str, Any] = {
        "n": len(pairs),
        "mean_difference": None,
        "interval": None,
        "confidence": confidence,
        "wins": int(np.sum(differences > 0)),
        "losses": int(np.sum(differences < 0)),
        "ties": int(np.sum(differences == 0)),
        "sign_test_p": sign_test(differences),
    }
    if pairs:
        result["mean_difference"] = float(np.mean(differences))
        low, high = bootstrap_interval(differences, np.mean, confidence, resamples, seed)
        result["interval"] = [low, high]
    return result


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given the average of the ranks they span ([5, 1, 5] -> [2.5, 1, 2.5])."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="stable")
    result = np.empty(len(data), dtype=float)
    i = 0
    while i < len(data):
        j = i
        while j + 1 < len(data) and data[order[j + 1]] == data[order[i]]:
            j += 1
        result[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (average-tied) ranks.

    Returns:
      A value in [-1, 1]; nan when either side has fewer than two distinct
      values (no ranking to correlate).

    Raises:
      ValueError: `x` and `y` differ in length.
    """
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values.")
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float(np.sum(rx * rx)) * float(np.sum(ry * ry)))
    return float(np.sum(rx * ry) / scale) if scale > 0 else math.nan


def spearman_interval(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> tuple[float, float]:
    """The bootstrap interval of `spearman(x, y)`, resampling (x, y) pairs together."""
    if len(x) != len(y):
        raise ValueError(f"spearman_interval: {len(x)} x values but {len(y)} y values.")
    pairs = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    return bootstrap_interval(
        pairs, lambda p: spearman(p[:, 0], p[:, 1]), confidence, resamples, seed
    )


def best_so_far_band(
    runs: Sequence[Sequence[float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Several searches' best-so-far curves as one band: median, min and max at each x.

    Args:
      runs: One sequence per search: the fitness of each candidate it trained,
        in the order trained.

    Returns:
      (x, median, low, high): x = 1..L, L the longest run; at each x the best
      fitness among each run's first x candidates, then its median, min and max
      over the runs. A run that trained fewer than x keeps its final best (its
      budget was spent). Runs without any candidate are left out; none at all
      gives four empty arrays.
    """
    curves = [np.maximum.accumulate(np.asarray(r, dtype=float)) for r in runs if len(r)]
    if not curves:
        empty = np.array([], dtype=float)
        return empty, empty, empty, empty
    length = max(len(c) for c in curves)
    table = np.array([np.pad(c, (0, length - len(c)), mode="edge") for c in curves])
    x = np.arange(1, length + 1)
    return x, np.median(table, axis=0), table.min(axis=0), table.max(axis=0)
