"""Anytime-valid confidence sequences for the canary's comparisons of proportions.

The analysis looks at the same growing window every pass. A fixed-sample test checked at every
look rejects a true null far more often than its level; a confidence sequence holds at every look
at once, so looking more often costs nothing. All intervals here come from one boundary, the
normal-mixture (Robbins) boundary of the mixture SPRT, applied to an asymptotically normal
estimate with a plug-in variance. `scale` is the spread of the mixture over effects: the boundary
is tightest when the estimate's standard error is about `scale`, so a check passes the effect size
it cares about (its margin).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """An estimate and its confidence-sequence bounds."""

    estimate: float
    low: float
    high: float


def mixture_radius(variance: float, scale: float, alpha: float) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence at level `alpha`.

    Mixture SPRT (Robbins 1970; Johari, Pekelis, Walsh 2017, "always valid p-values"): for an
    estimate with variance V, mixing the alternative over N(theta0, scale^2) gives the likelihood
    ratio sqrt(V / (V + s^2)) exp(s^2 (est - theta0)^2 / (2 V (V + s^2))), a martingale under
    theta0; by Ville's inequality it ever reaches 1/alpha with probability at most alpha. The
    values of theta0 it has not rejected form the interval est +- this radius (Howard, Ramdas,
    McAuliffe, Sekhon 2021, the normal-mixture confidence sequence)."""
    s2 = scale**2
    log_ratio = math.log(1 / alpha) + 0.5 * math.log1p(s2 / variance)
    return math.sqrt(2 * variance * (variance + s2) / s2 * log_ratio)


def proportion(successes: float, trials: float, *, scale: float, alpha: float) -> Interval:
    """Confidence sequence for one binomial proportion (Agresti-Coull: two pseudo-successes and
    two pseudo-failures keep the plug-in variance above zero at small counts)."""
    p = (successes + 2) / (trials + 4)
    radius = mixture_radius(p * (1 - p) / (trials + 4), scale, alpha)
    return Interval(successes / max(trials, 1), p - radius, p + radius)


def difference(x1: float, n1: float, x0: float, n0: float, *, ratio: float = 1.0, scale: float,
               alpha: float) -> Interval:  # fmt: skip
    """Confidence sequence for p1 - ratio * p0 from two independent binomial samples.

    Agresti-Caffo pseudo-counts (one success and one failure added to each sample) keep the
    plug-in variance away from zero; with `ratio` > 1 it tests a band multiplicative in p0."""
    p1, p0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)
    variance = p1 * (1 - p1) / (n1 + 2) + ratio**2 * p0 * (1 - p0) / (n0 + 2)
    radius = mixture_radius(variance, scale, alpha)
    centre = p1 - ratio * p0
    raw = x1 / max(n1, 1) - ratio * x0 / max(n0, 1)
    return Interval(raw, centre - radius, centre + radius)


def paired_difference(pairs: float, both: float, only1: float, only0: float, *, ratio: float = 1.0,
                      scale: float, alpha: float) -> Interval:  # fmt: skip
    """Confidence sequence for the mean of f - ratio * g over pairs of binary outcomes (f, g).

    A sequential McNemar-style test: with `ratio` 1 only the discordant cells (`only1`, `only0`)
    carry evidence; other ratios weigh the concordant `both` cell by 1 - ratio. Agresti-Min
    pseudo-counts (half a pair in each of the four cells) keep the variance above zero."""
    n = pairs + 2
    values = (1 - ratio, 1.0, -ratio)
    cells = (both + 0.5, only1 + 0.5, only0 + 0.5)
    mean = sum(v * c for v, c in zip(values, cells, strict=True)) / n
    second = sum(v * v * c for v, c in zip(values, cells, strict=True)) / n
    radius = mixture_radius(max(second - mean**2, 1e-12) / n, scale, alpha)
    raw = (both + only1 - ratio * (both + only0)) / max(pairs, 1)
    return Interval(raw, mean - radius, mean + radius)
