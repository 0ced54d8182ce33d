"""The confidence sequences hold their level however often they are looked at; a fixed-sample test
looked at every pass does not."""

import numpy as np
import pytest
from scipy.stats import norm

from jobs.canary.sequential import difference, mixture_radius, paired_difference, proportion

ALPHA = 0.05
PATHS, LOOKS, PER_LOOK = 600, 30, 400
SLACK = 3 * (ALPHA * (1 - ALPHA) / PATHS) ** 0.5
"""Monte Carlo allowance: three standard errors of a rate of ALPHA over PATHS paths."""


def null_paths(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative successes of two samples with the same rate, and the trials, at every look."""
    rng = np.random.default_rng(seed)
    x1 = rng.binomial(PER_LOOK, 0.05, (PATHS, LOOKS)).cumsum(axis=1)
    x0 = rng.binomial(PER_LOOK, 0.05, (PATHS, LOOKS)).cumsum(axis=1)
    return x1, x0, PER_LOOK * np.arange(1, LOOKS + 1)


def test_radius_shrinks_with_the_variance_and_widens_with_confidence() -> None:
    assert mixture_radius(1e-4, 0.01, 0.05) < mixture_radius(4e-4, 0.01, 0.05)
    assert mixture_radius(1e-4, 0.01, 0.01) > mixture_radius(1e-4, 0.01, 0.05)
    # Always wider than the fixed-sample interval at the same level: the price of looking any time.
    assert mixture_radius(1e-4, 0.01, 0.05) > norm.ppf(1 - ALPHA / 2) * 1e-2


@pytest.mark.parametrize("seed", [1, 2])
def test_repeated_looks_keep_the_false_alarm_rate_and_a_z_test_does_not(seed: int) -> None:
    x1, x0, n = null_paths(seed)
    sequential = fixed = 0
    z = norm.ppf(1 - ALPHA / 2)
    for path in range(PATHS):
        rejected_sequential = rejected_fixed = False
        for look in range(LOOKS):
            a, b, trials = x1[path, look], x0[path, look], n[look]
            interval = difference(a, trials, b, trials, scale=0.01, alpha=ALPHA)
            rejected_sequential |= interval.low > 0 or interval.high < 0
            p1, p0 = a / trials, b / trials
            se = np.sqrt(p1 * (1 - p1) / trials + p0 * (1 - p0) / trials)
            rejected_fixed |= abs(p1 - p0) > z * se
        sequential += rejected_sequential
        fixed += rejected_fixed
    assert sequential / PATHS <= ALPHA + SLACK
    assert fixed / PATHS > 2 * ALPHA


def test_paired_difference_keeps_its_level_under_repeated_looks() -> None:
    rng = np.random.default_rng(7)
    # Two models flag at the same rate and agree on most flags: only the discordant cells differ.
    cells = rng.multinomial(PER_LOOK, [0.04, 0.01, 0.01, 0.94], (PATHS, LOOKS)).cumsum(axis=1)
    rejected = 0
    for path in range(PATHS):
        for look in range(LOOKS):
            both, only1, only0, _ = cells[path, look]
            interval = paired_difference(PER_LOOK * (look + 1), both, only1, only0, scale=0.01, alpha=ALPHA)
            if interval.low > 0 or interval.high < 0:
                rejected += 1
                break
    assert rejected / PATHS <= ALPHA + SLACK


def test_a_real_difference_is_found_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    x1, x0 = rng.binomial(n, 0.07), rng.binomial(n, 0.05)
    interval = difference(x1, n, x0, n, scale=0.01, alpha=0.01)
    assert interval.low > 0
    assert interval.low < 0.02 < interval.high


def test_a_ratio_band_tests_the_scaled_difference() -> None:
    # 1.5 % against 0.5 %: three times the rate, outside a band of x 1.5.
    interval = difference(300, 20_000, 100, 20_000, ratio=1.5, scale=0.0025, alpha=0.001)
    assert interval.low > 0
    assert difference(110, 20_000, 100, 20_000, ratio=1.5, scale=0.0025, alpha=0.001).low < 0


def test_paired_difference_uses_only_the_discordant_cells_at_ratio_one() -> None:
    a = paired_difference(1000, 10, 30, 5, scale=0.02, alpha=0.05)
    b = paired_difference(1000, 400, 30, 5, scale=0.02, alpha=0.05)
    assert a.estimate == pytest.approx(b.estimate) == pytest.approx(0.025)
    assert a.low > 0


def test_proportion_at_zero_counts_has_a_positive_width() -> None:
    interval = proportion(0, 0, scale=0.01, alpha=0.05)
    assert interval.estimate == 0
    assert interval.low < 0 < interval.high
