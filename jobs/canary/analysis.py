"""One analysis pass's decision: advance, hold, promote or roll back, with every check shown.

Three layers, each comparing the challenger with the champion over the same window:
- service: error ratio and share of slow requests; evidence of a breach rolls back at once;
- behaviour (audit log, no labels): flag-rate band (paired on shadow copies when there are
  some), score distribution (population stability index), optional alert-volume band;
- labels (matured): recall and precision non-inferior within a margin. Until there are enough
  frauds this layer is inconclusive, never passed; promotion (leaving the last step) needs it
  to pass, and a clearly inferior result rolls back at any step.

The rollback budget `plan.alpha` is split evenly (Bonferroni) over every test that can roll back:
the service and behaviour tests of every step (each step opens a new window) plus the two label
tests (one window since the analysis began). Each test is an anytime-valid confidence sequence
(`jobs.canary.sequential`), so the budget holds however many passes look at a window.
"""

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from fraudcore.errors import UsageError
from jobs.canary.measurements import Behaviour, Measurements, ServiceCounts
from jobs.canary.plan import Plan
from jobs.canary.sequential import Interval, difference, paired_difference, proportion

Layer = Literal["service", "behaviour", "labels"]
Verdict = Literal["pass", "fail", "inconclusive"]
Action = Literal["advance", "hold", "promote", "rollback"]


@dataclass(frozen=True)
class Check:
    """One comparison: the challenger's value, the champion's, the limit and the verdict."""

    layer: Layer
    name: str
    value: float | None
    baseline: float | None
    limit: str | float
    verdict: Verdict
    detail: str
    threshold: float | None = None
    """The number `value` is held against (the `fraud_canary_check_limit` gauge), when there is one."""


@dataclass(frozen=True)
class Decision:
    """What the pass decided, why (one line), and every check it weighed."""

    action: Action
    reason: str
    checks: tuple[Check, ...]


def check_alpha(plan: Plan) -> float:
    """The level of each test: `plan.alpha` over all tests that can roll back the canary.

    Per step: error ratio, slow share, and the flag-rate band's two sides (plus the alert band
    when on); once for the canary: recall and precision."""
    per_step = 4 + (plan.alerts_per_hour is not None)
    return plan.alpha / (len(plan.steps) * per_step + 2)


def _pair(counts: dict[str, Any], kind: str, layer: Layer, name: str, limit: str) -> tuple[Any, Any] | Check:
    """Both roles' counts, or an inconclusive check saying which role has none yet."""
    challenger, champion = counts.get("challenger"), counts.get("champion")
    for role, value in (("challenger", challenger), ("champion", champion)):
        if value is None or getattr(value, kind) <= 0:
            return Check(layer, name, None, None, limit, "inconclusive", f"no {role} {kind} yet")
    return challenger, champion


def _excess(name: str, value: float, baseline: float, interval: Interval, margin: float) -> Check:
    """A service guardrail: it fails when the challenger's excess over the champion is, with
    confidence, above `margin`."""
    verdict: Verdict = "fail" if interval.low > margin else "pass"
    word = ">" if verdict == "fail" else "within"
    detail = (
        f"{value:.3%} vs champion {baseline:.3%}: excess {interval.estimate:+.3%} "
        f"(at least {interval.low:+.3%}), {word} +{margin:.3%}"
    )
    return Check(
        "service", name, value, baseline, f"champion + {margin:g}", verdict, detail, baseline + margin
    )


def error_check(plan: Plan, m: Measurements, alpha: float) -> Check:
    """Error ratio (refused / answered requests), challenger against champion."""
    limit = f"champion + {plan.error_margin:g}"
    pair = _pair(m.service, "requests", "service", "error ratio", limit)
    if isinstance(pair, Check):
        return pair
    ch, cm = pair
    margin = plan.error_margin
    interval = difference(ch.errors, ch.requests, cm.errors, cm.requests, scale=margin, alpha=alpha)
    return _excess("error ratio", ch.errors / ch.requests, cm.errors / cm.requests, interval, margin)


def latency_check(plan: Plan, m: Measurements, alpha: float) -> Check:
    """Share of requests slower than the champion's latency quantile over the same window."""
    name, limit = "slow share", f"champion + {plan.slow_margin:g}"
    if m.latency_bound_s is None:
        return Check("service", name, None, None, limit, "inconclusive", "no champion latency quantile yet")
    pair = _pair(m.service, "requests", "service", name, limit)
    if isinstance(pair, Check):
        return pair
    ch, cm = pair
    interval = difference(ch.slow, ch.requests, cm.slow, cm.requests, scale=plan.slow_margin, alpha=alpha)
    check = _excess(name, ch.slow / ch.requests, cm.slow / cm.requests, interval, plan.slow_margin)
    bound = f"; slow: over {m.latency_bound_s * 1000:.1f} ms (champion p{plan.latency_quantile * 100:g})"
    return replace(check, detail=check.detail + bound)


def _band_verdict(above: Interval, below: Interval) -> tuple[Verdict, str]:
    if above.low > 0:
        return "fail", "flags more than the band allows"
    if below.high < 0:
        return "fail", "flags less than the band allows"
    return "pass", "within the band"


def flag_rate_check(plan: Plan, m: Measurements, alpha: float) -> Check:
    """Flag rate at the operating threshold within [1/r, r] x the champion's: paired on the same
    transactions when there are shadow pairs (discordant cells), unpaired otherwise. Flagging far
    less is a failure too: at an unchanged threshold it means lost recall or a broken model."""
    r, limit = plan.flag_ratio, f"[1/{plan.flag_ratio:g}, {plan.flag_ratio:g}] x champion"
    pair = _pair(m.behaviour, "scored", "behaviour", "flag rate", limit)
    if isinstance(pair, Check):
        return pair
    ch, cm = pair
    pooled = (ch.flagged + cm.flagged + 1) / (ch.scored + cm.scored + 2)
    scale = (r - 1) * pooled
    p = m.paired
    if p is not None and p.pairs > 0:
        cells = (p.pairs, p.both, p.challenger_only, p.champion_only)
        above = paired_difference(*cells, ratio=r, scale=scale, alpha=alpha)
        below = paired_difference(*cells, ratio=1 / r, scale=scale, alpha=alpha)
        value, baseline = (p.both + p.challenger_only) / p.pairs, (p.both + p.champion_only) / p.pairs
        agree = 1 - (p.champion_only + p.challenger_only) / p.pairs
        rho = "n/a" if p.rank_correlation is None else f"{p.rank_correlation:.2f}"
        how = f"paired on {p.pairs:,} transactions, decisions agree on {agree:.2%}, rank correlation {rho}"
    else:
        counts = (ch.flagged, ch.scored, cm.flagged, cm.scored)
        above = difference(*counts, ratio=r, scale=scale, alpha=alpha)
        below = difference(*counts, ratio=1 / r, scale=scale, alpha=alpha)
        value, baseline = ch.flagged / ch.scored, cm.flagged / cm.scored
        how = f"unpaired, {ch.scored:,} vs {cm.scored:,} scored"
    verdict, word = _band_verdict(above, below)
    detail = f"{value:.3%} vs champion {baseline:.3%}, {word} ({how})"
    return Check("behaviour", "flag rate", value, baseline, limit, verdict, detail, r * baseline)


def stability_index(challenger: Behaviour, champion: Behaviour) -> float:
    """Population stability index between two score histograms (half a count added per bin)."""
    k = len(champion.score_bins)
    ch_total, cm_total = sum(challenger.score_bins) + k / 2, sum(champion.score_bins) + k / 2
    index = 0.0
    for a, b in zip(challenger.score_bins, champion.score_bins, strict=True):
        pa, pb = (a + 0.5) / ch_total, (b + 0.5) / cm_total
        index += (pa - pb) * math.log(pa / pb)
    return index


def score_check(plan: Plan, m: Measurements) -> Check:
    """Score distribution: the population stability index against the champion's, once the
    challenger scored `min_requests` rows (its small-sample bias, about (bins - 1) / n, is then
    far below the limit)."""
    limit = plan.score_distance
    pair = _pair(m.behaviour, "scored", "behaviour", "score distribution", f"PSI <= {limit:g}")
    if isinstance(pair, Check):
        return pair
    ch, cm = pair
    index = stability_index(ch, cm)
    if ch.scored < plan.min_requests:
        verdict: Verdict = "inconclusive"
        detail = f"PSI {index:.3f} on {ch.scored:,} of {plan.min_requests:,} rows needed"
    else:
        verdict = "fail" if index > limit else "pass"
        detail = f"PSI {index:.3f} {'>' if verdict == 'fail' else '<='} {limit:g}"
    return Check("behaviour", "score distribution", index, 0.0, f"PSI <= {limit:g}", verdict, detail, limit)


def alert_check(plan: Plan, m: Measurements, alpha: float) -> Check | None:
    """Alerts per hour at the challenger's flag rate over all client traffic, against what the
    review team can handle (None when the plan sets no limit)."""
    limit = plan.alerts_per_hour
    if limit is None:
        return None
    pair = _pair(m.behaviour, "scored", "behaviour", "alert volume", f"<= {limit:g} per hour")
    if isinstance(pair, Check):
        return pair
    ch, cm = pair
    per_hour = m.transactions_per_hour
    rate = proportion(ch.flagged, ch.scored, scale=limit / max(per_hour, 1), alpha=alpha)
    value, baseline = rate.estimate * per_hour, cm.flagged / cm.scored * per_hour
    verdict: Verdict = "fail" if rate.low * per_hour > limit else "pass"
    detail = (
        f"{value:,.1f} alerts per hour (at least {rate.low * per_hour:,.1f}) vs champion "
        f"{baseline:,.1f}, limit {limit:g}"
    )
    return Check(
        "behaviour", "alert volume", value, baseline, f"<= {limit:g} per hour", verdict, detail, limit
    )


def _non_inferior(name: str, values: tuple[float | None, float | None], interval: Interval, margin: float,
                  how: str) -> Check:  # fmt: skip
    """Non-inferiority: passes when the difference's lower bound is above -margin, fails when
    its upper bound is below it, and is inconclusive in between."""
    if interval.high < -margin:
        verdict: Verdict = "fail"
    else:
        verdict = "pass" if interval.low > -margin else "inconclusive"
    detail = (
        f"difference {interval.estimate:+.3f} (bounds {interval.low:+.3f} .. {interval.high:+.3f}) "
        f"against margin -{margin:g}, {how}"
    )
    floor = None if values[1] is None else values[1] - margin
    return Check("labels", name, *values, f"champion - {margin:g}", verdict, detail, floor)


def _rates(m: Measurements, top: str, bottom: str) -> tuple[float | None, float | None]:
    out = []
    for role in ("challenger", "champion"):
        labelled = m.labels.get(role)
        denominator = getattr(labelled, bottom, 0) if labelled else 0
        out.append(getattr(labelled, top) / denominator if denominator else None)
    return out[0], out[1]


def recall_check(plan: Plan, m: Measurements, alpha: float) -> Check:
    """Recall at the operating point on matured labels, non-inferior within `recall_margin`:
    paired on the discordant frauds (caught by one model only) when the paired set is at least
    as large as the challenger's own labelled frauds, unpaired otherwise."""
    values, margin = _rates(m, "caught", "frauds"), plan.recall_margin
    ch, cm, pl = m.labels.get("challenger"), m.labels.get("champion"), m.paired_labels
    unpaired = min(ch.frauds, cm.frauds) if ch and cm else 0
    if pl is not None and pl.frauds >= unpaired:
        if pl.frauds < plan.min_frauds:
            return _too_few("recall", values, margin, pl.frauds, plan.min_frauds)
        cells = (pl.frauds, 0, pl.challenger_only_caught, pl.champion_only_caught)
        interval = paired_difference(*cells, scale=margin, alpha=alpha)
        return _non_inferior("recall", values, interval, margin, f"paired on {pl.frauds:,} frauds")
    if not ch or not cm or unpaired < plan.min_frauds:
        return _too_few("recall", values, margin, unpaired, plan.min_frauds)
    interval = difference(ch.caught, ch.frauds, cm.caught, cm.frauds, scale=margin, alpha=alpha)
    return _non_inferior("recall", values, interval, margin, f"{ch.frauds:,} vs {cm.frauds:,} frauds")


def precision_check(plan: Plan, m: Measurements, alpha: float) -> Check:
    """Precision at the operating point on matured labels, non-inferior within `precision_margin`
    (unpaired: the paired cells do not say how many flags both models share)."""
    values, margin = _rates(m, "true_flagged", "flagged"), plan.precision_margin
    ch, cm = m.labels.get("challenger"), m.labels.get("champion")
    frauds = min(ch.frauds, cm.frauds) if ch and cm else 0
    if not ch or not cm or frauds < plan.min_frauds or not (ch.flagged and cm.flagged):
        return _too_few("precision", values, margin, frauds, plan.min_frauds)
    interval = difference(ch.true_flagged, ch.flagged, cm.true_flagged, cm.flagged, scale=margin, alpha=alpha)
    return _non_inferior("precision", values, interval, margin, f"{ch.flagged:,} vs {cm.flagged:,} flagged")


def _too_few(name: str, values: tuple[float | None, float | None], margin: float, frauds: int,
             needed: int) -> Check:  # fmt: skip
    detail = f"{frauds:,} matured frauds of {needed:,} needed"
    return Check("labels", name, *values, f"champion - {margin:g}", "inconclusive", detail)


def _shortfall(plan: Plan, m: Measurements) -> str | None:
    """Why the step's sample is too small to advance, or None."""
    requests = m.service.get("challenger", ServiceCounts(0, 0, 0)).requests
    if requests < plan.min_requests or m.minutes_in_step < plan.min_minutes:
        return (
            f"sample too small: {requests:,.0f} of {plan.min_requests:,} challenger requests, "
            f"{m.minutes_in_step:.1f} of {plan.min_minutes:g} minutes"
        )
    return None


def decide(plan: Plan, step: int, m: Measurements) -> Decision:
    """One pass: roll back on any failed check; hold while the sample is small or a check that
    gates this step is inconclusive, rolling back once the step's deadline has passed; else
    advance, or promote from the last step (which alone needs the label layer to pass)."""
    if not 0 <= step < len(plan.steps):
        raise UsageError(f"canary step {step} is not in the plan's {len(plan.steps)} steps")
    alpha = check_alpha(plan)
    guards = [error_check(plan, m, alpha), latency_check(plan, m, alpha), flag_rate_check(plan, m, alpha)]
    guards += [c for c in (score_check(plan, m), alert_check(plan, m, alpha)) if c is not None]
    labels = [recall_check(plan, m, alpha), precision_check(plan, m, alpha)]
    checks = (*guards, *labels)
    failed = next((c for c in checks if c.verdict == "fail"), None)
    if failed is not None:
        return Decision("rollback", f"{failed.name} failed: {failed.detail}", checks)
    last = step == len(plan.steps) - 1
    short = _shortfall(plan, m)
    waiting = [c for c in guards + (labels if last else []) if c.verdict == "inconclusive"]
    if short is None and not waiting:
        if last:
            return Decision("promote", f"{plan.steps[step]} passed, labels non-inferior: promote", checks)
        return Decision("advance", f"{plan.steps[step]} passed: next {plan.steps[step + 1]}", checks)
    why = short or "inconclusive: " + "; ".join(f"{c.name} ({c.detail})" for c in waiting)
    only_labels = short is None and all(c.layer == "labels" for c in waiting)
    deadline = plan.label_wait_hours * 60 if last and only_labels else plan.max_minutes
    if m.minutes_in_step > deadline:
        return Decision("rollback", f"inconclusive after {m.minutes_in_step:.0f} minutes: {why}", checks)
    return Decision("hold", why, checks)
