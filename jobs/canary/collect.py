"""Measuring one analysis pass: per-role service counts from Prometheus, behaviour, pairs and matured
labels from the audit log, each over the same window for both roles.

The champion is its client traffic (role `champion`, its pinned version); the challenger is, in a
shadow step, the mirrored copies it scored (role `shadow`), otherwise its client traffic. Service
and behaviour count from the step's start; labels from the analysis's start, on transactions older
than the plan's label delay.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from fraudcore.names import CHALLENGER, CHAMPION
from jobs.canary.measurements import (
    SCORE_EDGES,
    Behaviour,
    Labelled,
    Measurements,
    Paired,
    PairedLabels,
    ServiceCounts,
)
from jobs.canary.metrics import query

if TYPE_CHECKING:
    from jobs.canary.plan import Plan

SHADOW = "shadow"
MIN_WINDOW_S = 30


@dataclass(frozen=True)
class Window:
    """What one pass measures: the two versions, the challenger's audit/metric role, and since when."""

    champion_version: int
    challenger_version: int
    shadow: bool
    step_started: datetime
    analysis_started: datetime
    now: datetime

    @property
    def challenger_role(self) -> str:
        return SHADOW if self.shadow else CHALLENGER

    @property
    def step_seconds(self) -> float:
        return (self.now - self.step_started).total_seconds()

    def role_of(self, role: str, version: str) -> str | None:
        """'champion' / 'challenger' for a series of either side of the comparison, else None."""
        if role == CHAMPION and version == str(self.champion_version):
            return CHAMPION
        if role == self.challenger_role and version == str(self.challenger_version):
            return CHALLENGER
        return None


def measure(
    prometheus_url: str, audit_dsn: str | None, namespace: str, plan: Plan, window: Window
) -> Measurements:
    """One pass's measurements; UnavailableError when Prometheus or the audit log cannot be read."""
    service, bound, per_hour = service_counts(prometheus_url, namespace, plan.latency_quantile, window)
    with auditdb.connect(audit_dsn) as conn:
        try:
            behaviour = behaviour_counts(conn, window)
            paired = paired_counts(conn, window) if window.shadow else None
            matured = window.now - timedelta(hours=plan.label_delay_hours)
            labels = label_counts(conn, window, matured)
            paired_labels = paired_label_counts(conn, window, matured)
        except psycopg.Error as e:
            raise UnavailableError(f"reading the audit log failed: {auditdb.describe(e)}") from e
    return Measurements(
        minutes_in_step=window.step_seconds / 60,
        latency_bound_s=bound,
        transactions_per_hour=per_hour,
        service=service,
        behaviour=behaviour,
        paired=paired,
        labels=labels,
        paired_labels=paired_labels,
    )


def service_counts(
    prometheus_url: str, namespace: str, quantile: float, window: Window
) -> tuple[dict[str, ServiceCounts], float | None, float]:
    """Per-role requests, refusals and requests slower than the champion's latency `quantile` (the
    bucket edge at or above it), and the transactions scored for clients per hour."""
    seconds = max(MIN_WINDOW_S, math.ceil(window.step_seconds))
    sel = f"namespace={json.dumps(namespace)}"
    rng = f"[{seconds}s]"
    buckets: dict[str, dict[float, float]] = {}
    for sample in query(
        prometheus_url,
        f"sum by (role, model_version, le) (increase(fraud_request_seconds_bucket{{{sel}}}{rng}))",
    ):
        if side := window.role_of(
            sample["metric"].get("role", ""), sample["metric"].get("model_version", "")
        ):
            buckets.setdefault(side, {})[float(sample["metric"]["le"])] = float(sample["value"][1])
    errors: dict[str, float] = {}
    for sample in query(
        prometheus_url,
        f"sum by (role, model_version) (increase(fraud_rejected_requests_total{{{sel}}}{rng}))",
    ):
        if side := window.role_of(
            sample["metric"].get("role", ""), sample["metric"].get("model_version", "")
        ):
            errors[side] = errors.get(side, 0.0) + float(sample["value"][1])
    bound = quantile_edge(buckets.get(CHAMPION, {}), quantile)
    service = {
        side: ServiceCounts(
            requests=scored_total(buckets.get(side, {})) + errors.get(side, 0.0),
            errors=errors.get(side, 0.0),
            slow=slower_than(buckets.get(side, {}), bound),
        )
        for side in (CHAMPION, CHALLENGER)
    }
    served = query(
        prometheus_url,
        f'sum(increase(fraud_predictions_total{{{sel}, role=~"{CHAMPION}|{CHALLENGER}"}}{rng}))',
    )
    per_hour = float(served[0]["value"][1]) * 3600 / seconds if served else 0.0
    return service, bound, per_hour


def scored_total(cumulative: dict[float, float]) -> float:
    return cumulative.get(math.inf, 0.0)


def quantile_edge(cumulative: dict[float, float], quantile: float) -> float | None:
    """The smallest finite bucket edge at or above the histogram's `quantile` (None: no requests, or
    the quantile lies in the +Inf bucket)."""
    total = scored_total(cumulative)
    if total <= 0:
        return None
    return next(
        (le for le in sorted(cumulative) if le != math.inf and cumulative[le] >= quantile * total), None
    )


def slower_than(cumulative: dict[float, float], bound: float | None) -> float:
    if bound is None:
        return 0.0
    return max(0.0, scored_total(cumulative) - cumulative.get(bound, 0.0))


_SIDES = """(
    (role = 'champion' AND model_version = %(champion)s)
    OR (role = %(challenger_role)s AND model_version = %(challenger)s)
)"""
_BEHAVIOUR = f"""
SELECT role, width_bucket(score, %(edges)s::real[]), count(*), count(*) FILTER (WHERE decision)
FROM {auditdb.TABLE} WHERE scored_at >= %(since)s AND {_SIDES} GROUP BY 1, 2
"""
_PAIRS = f"""
FROM {auditdb.TABLE} c JOIN {auditdb.TABLE} s ON s.request_id = c.request_id AND s.row_index = c.row_index
WHERE c.role = 'champion' AND c.model_version = %(champion)s AND c.scored_at >= %(since)s
  AND s.role = 'shadow' AND s.model_version = %(challenger)s AND s.scored_at >= %(since)s
"""
_PAIRED = f"""
WITH p AS (SELECT c.score AS cs, s.score AS ss, c.decision AS cd, s.decision AS sd {_PAIRS}),
r AS (SELECT *, rank() OVER (ORDER BY cs) AS rc, rank() OVER (ORDER BY ss) AS rs FROM p)
SELECT count(*), count(*) FILTER (WHERE cd AND sd), count(*) FILTER (WHERE cd AND NOT sd),
       count(*) FILTER (WHERE sd AND NOT cd), corr(rc, rs)
FROM r
"""
_LABELS = f"""
SELECT role = 'champion', count(*) FILTER (WHERE label = 1), count(*) FILTER (WHERE label = 1 AND decision),
       count(*) FILTER (WHERE decision), count(*) FILTER (WHERE decision AND label = 1)
FROM {auditdb.TABLE}
WHERE scored_at >= %(since)s AND scored_at < %(matured)s AND label IS NOT NULL AND (
    (role = 'champion' AND model_version = %(champion)s)
    OR (role IN ('challenger', 'shadow') AND model_version = %(challenger)s)
)
GROUP BY 1
"""
_PAIRED_LABELS = f"""
SELECT count(*), count(*) FILTER (WHERE c.label = 1),
       count(*) FILTER (WHERE c.label = 1 AND c.decision AND NOT s.decision),
       count(*) FILTER (WHERE c.label = 1 AND s.decision AND NOT c.decision),
       count(*) FILTER (WHERE c.label = 0 AND c.decision AND NOT s.decision),
       count(*) FILTER (WHERE c.label = 0 AND s.decision AND NOT c.decision)
{_PAIRS} AND c.scored_at < %(matured)s AND c.label IS NOT NULL
"""


def _params(window: Window, since: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "champion": str(window.champion_version),
        "challenger": str(window.challenger_version),
        "challenger_role": window.challenger_role,
        "since": since,
        **extra,
    }


def behaviour_counts(conn: psycopg.Connection, window: Window) -> dict[str, Behaviour]:
    """Per-role scored and flagged transactions and scores per bin, since the step began."""
    bins = {side: [0] * (len(SCORE_EDGES) + 1) for side in (CHAMPION, CHALLENGER)}
    flagged = dict.fromkeys(bins, 0)
    params = _params(window, window.step_started, edges=list(SCORE_EDGES))
    for role, index, count, fraud in conn.execute(_BEHAVIOUR, params).fetchall():
        side = CHAMPION if role == CHAMPION else CHALLENGER
        bins[side][index] += count
        flagged[side] += fraud
    return {side: Behaviour(sum(b), flagged[side], tuple(b)) for side, b in bins.items()}


def paired_counts(conn: psycopg.Connection, window: Window) -> Paired:
    """The step's shadow copies joined to the champion's rows of the same transactions."""
    pairs, both, champion_only, challenger_only, rho = conn.execute(
        _PAIRED, _params(window, window.step_started)
    ).fetchone() or (0, 0, 0, 0, None)
    return Paired(pairs, both, champion_only, challenger_only, None if rho is None else float(rho))


def label_counts(conn: psycopg.Connection, window: Window, matured: datetime) -> dict[str, Labelled]:
    """Matured labels per role since the analysis began (the challenger's served and shadow rows)."""
    out = {side: Labelled(0, 0, 0, 0) for side in (CHAMPION, CHALLENGER)}
    rows = conn.execute(_LABELS, _params(window, window.analysis_started, matured=matured)).fetchall()
    for is_champion, frauds, caught, flagged, true_flagged in rows:
        out[CHAMPION if is_champion else CHALLENGER] = Labelled(frauds, caught, flagged, true_flagged)
    return out


def paired_label_counts(conn: psycopg.Connection, window: Window, matured: datetime) -> PairedLabels | None:
    """Matured labels of shadow-paired transactions since the analysis began (None: no pairs)."""
    row = conn.execute(_PAIRED_LABELS, _params(window, window.analysis_started, matured=matured)).fetchone()
    if not row or not row[0]:
        return None
    return PairedLabels(*row[1:])
