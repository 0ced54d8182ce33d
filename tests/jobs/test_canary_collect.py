"""What an analysis pass measures: per-role counts from a Prometheus query endpoint and from a real
PostgreSQL audit log, over the step's window (service, behaviour, pairs) or the analysis's (labels)."""

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from jobs.canary.collect import Window, measure, quantile_edge, slower_than
from jobs.canary.measurements import SCORE_EDGES
from jobs.canary.plan import Plan
from tests.support import free_port, prometheus_endpoint

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STEP = NOW - timedelta(minutes=10)
BEGAN = NOW - timedelta(days=5)

EDGES = (0.001, 0.005, 0.01, 0.05, math.inf)
# (role, version) → cumulative requests per latency bucket edge
HISTOGRAMS = {
    ("champion", "3"): (0, 500, 990, 1000, 1000),
    ("shadow", "4"): (0, 100, 700, 980, 1000),
    ("challenger", "4"): (0, 1, 2, 3, 3),  # the client-traffic series: not this shadow step's
    ("champion", "2"): (0, 0, 0, 0, 50),  # an earlier champion version: not compared
}
REJECTED = {("champion", "3"): 2.0, ("shadow", "4"): 40.0}


def answer(query: str) -> list[dict]:
    """The pass's three queries, answered from the tables above."""
    if "fraud_request_seconds_bucket" in query:
        return [
            {"metric": {"role": r, "model_version": v, "le": str(le)}, "value": [0, str(n)]}
            for (r, v), counts in HISTOGRAMS.items()
            for le, n in zip(["+Inf" if e == math.inf else e for e in EDGES], counts, strict=True)
        ]
    if "fraud_rejected_requests_total" in query:
        return [
            {"metric": {"role": r, "model_version": v}, "value": [0, str(n)]}
            for (r, v), n in REJECTED.items()
        ]
    return [{"metric": {}, "value": [0, "6000"]}]


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[str]]]:
    with prometheus_endpoint(answer) as endpoint:
        yield endpoint


def window(shadow: bool = True) -> Window:
    return Window(3, 4, shadow, step_started=STEP, analysis_started=BEGAN, now=NOW)


def insert(dsn: str, rows: list[tuple]) -> None:
    """Audit rows: (request_id, row_index, scored_at, score, decision, model_version, role, label)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        auditdb.ensure_table(conn)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {auditdb.TABLE} (request_id, row_index, scored_at, features, score,"
                " decision, model_version, role, latency_s, label)"
                " VALUES (%s, %s, %s, '{}', %s, %s, %s, %s, 0.001, %s)",
                rows,
            )


def test_quantile_edge_and_slow_share() -> None:
    cumulative = dict(zip(EDGES, (0, 500, 990, 1000, 1000), strict=True))
    assert quantile_edge(cumulative, 0.99) == 0.01
    assert quantile_edge(cumulative, 0.5) == 0.005
    assert quantile_edge({math.inf: 0.0}, 0.99) is None
    assert quantile_edge({0.01: 10.0, math.inf: 100.0}, 0.99) is None  # in the +Inf bucket
    assert slower_than(dict(zip(EDGES, (0, 100, 700, 980, 1000), strict=True)), 0.01) == 300
    assert slower_than(cumulative, None) == 0


def test_service_counts_compare_the_shadow_series_with_the_champion(
    prometheus: tuple[str, list[str]], audit_dsn: str
) -> None:
    url, queries = prometheus
    measured = measure(url, audit_dsn, "fraud", Plan(), window(shadow=True))
    assert measured.latency_bound_s == 0.01  # the champion's p99 bucket edge
    champion, challenger = measured.service["champion"], measured.service["challenger"]
    assert (champion.requests, champion.errors, champion.slow) == (1002, 2, 10)
    assert (challenger.requests, challenger.errors, challenger.slow) == (1040, 40, 300)
    assert measured.transactions_per_hour == pytest.approx(6000 * 3600 / 600)
    assert all('namespace="fraud"' in q and "[600s]" in q for q in queries)
    assert measured.minutes_in_step == pytest.approx(10)


def test_behaviour_pairs_and_labels_from_the_audit_log(
    prometheus: tuple[str, list[str]], audit_dsn: str
) -> None:
    fresh, matured, before = NOW - timedelta(minutes=5), NOW - timedelta(days=4), BEGAN - timedelta(days=1)
    rows = []
    # Ten transactions scored by the champion (v3) and mirrored to the challenger (v4, role shadow).
    for i in range(10):
        champion_flags, shadow_flags = i < 2, i < 4
        label = 1 if i in (0, 2) else 0
        rows += [
            (f"r{i}", 0, fresh, 0.1 * i, champion_flags, "3", "champion", None),
            (f"r{i}", 0, fresh, 0.1 * i + 0.01, shadow_flags, "4", "shadow", None),
            (f"m{i}", 0, matured, 0.1 * i, champion_flags, "3", "champion", label),
            (f"m{i}", 0, matured, 0.1 * i + 0.01, shadow_flags, "4", "shadow", label),
        ]
    rows += [
        ("old", 0, before, 0.9, True, "3", "champion", 1),  # before the analysis began
        ("other", 0, fresh, 0.9, True, "2", "champion", None),  # another champion version
        ("served", 0, fresh, 0.9, True, "4", "challenger", None),  # client traffic: not a shadow step's
    ]
    insert(audit_dsn, rows)
    measured = measure(prometheus[0], audit_dsn, "fraud", Plan(), window(shadow=True))

    champion, challenger = measured.behaviour["champion"], measured.behaviour["challenger"]
    assert (champion.scored, champion.flagged, challenger.scored, challenger.flagged) == (10, 2, 10, 4)
    assert len(champion.score_bins) == len(SCORE_EDGES) + 1 and sum(champion.score_bins) == 10
    assert champion.score_bins[0] == 1  # the score 0.0 is below the first edge
    paired = measured.paired
    assert paired is not None
    assert (paired.pairs, paired.both, paired.champion_only, paired.challenger_only) == (10, 2, 0, 2)
    assert paired.rank_correlation == pytest.approx(1.0)

    # Labels: the matured rows only (the fresh ones are younger than the 72 h delay).
    assert measured.labels["champion"].__dict__ == {"frauds": 2, "caught": 1, "flagged": 2, "true_flagged": 1}
    assert measured.labels["challenger"].__dict__ == {
        "frauds": 2,
        "caught": 2,
        "flagged": 4,
        "true_flagged": 2,
    }
    pl = measured.paired_labels
    assert pl is not None
    assert (pl.frauds, pl.champion_only_caught, pl.challenger_only_caught) == (2, 0, 1)
    assert (pl.champion_only_false, pl.challenger_only_false) == (0, 1)


def test_a_weight_step_measures_the_challengers_client_traffic(
    prometheus: tuple[str, list[str]], audit_dsn: str
) -> None:
    fresh = NOW - timedelta(minutes=1)
    insert(
        audit_dsn,
        [
            ("a", 0, fresh, 0.5, True, "4", "challenger", None),
            ("b", 0, fresh, 0.5, True, "4", "shadow", None),
        ],
    )
    measured = measure(prometheus[0], audit_dsn, "fraud", Plan(), window(shadow=False))
    assert measured.service["challenger"].requests == 3
    assert measured.behaviour["challenger"].scored == 1
    assert measured.paired is None


def test_unreachable_sources_are_one_readable_error(audit_dsn: str) -> None:
    with pytest.raises(UnavailableError, match=r"Prometheus at .* not reachable"):
        measure(f"http://127.0.0.1:{free_port()}", audit_dsn, "fraud", Plan(), window())
