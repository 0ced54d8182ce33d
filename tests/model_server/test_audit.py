"""The audit writer against a real PostgreSQL: batched writes, each row's features as one JSON object
in the model's schema, the outage path, recovery."""

import logging
import time
from collections.abc import Callable

import numpy as np
import psycopg
import pytest
from prometheus_client import REGISTRY

from fraudcore import auditdb
from fraudcore.reasons import Reasons
from fraudcore.schema import Feature, Schema
from fraudcore.settings import AuditReasons
from model_server.audit import AuditLog
from tests.pg import Postgres

NUMERIC = Schema.numeric(f"f{i}" for i in range(30))


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def audit_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (auditdb.TABLE,)).fetchone() == (None,):
            return 0
        row = conn.execute(f"SELECT count(*) FROM {auditdb.TABLE}").fetchone()
    return int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def scored(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n).astype(np.float32)
    return rng.standard_normal((n, 30)).astype(np.float32), scores, scores > 0.5


def test_writes_every_row_with_its_request(audit_dsn: str) -> None:
    written = counter("fraud_audit_written_rows_total")
    log = AuditLog(audit_dsn, buffer_rows=1_000, schema=NUMERIC, flush_interval_s=0.05)
    log.start()
    features, scores, decisions = scored(5)
    log.record("req-a", features, scores, decisions, "3", "champion", 0.004)
    log.record("req-b", features[:1], scores[:1], decisions[:1], "4", "challenger", 0.002)
    log.close()

    with psycopg.connect(audit_dsn) as conn:
        rows = conn.execute(
            f"SELECT request_id, row_index, features, score, decision, model_version, role, latency_s, "
            f"label, scored_at > now() - interval '1 minute' FROM {auditdb.TABLE} "
            "ORDER BY request_id, row_index"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("req-a", i) for i in range(5)] + [("req-b", 0)]
    first = rows[0]
    assert set(first[2]) == set(NUMERIC.names)
    # Each number is the float32 value the model scored, written as its shortest text.
    assert np.array([first[2][name] for name in NUMERIC.names], np.float32).tolist() == features[0].tolist()
    assert first[3:5] == (pytest.approx(scores[0]), bool(decisions[0]))
    assert first[5:9] == ("3", "champion", pytest.approx(0.004), None)
    assert first[9] is True
    assert rows[-1][5:7] == ("4", "challenger")
    assert counter("fraud_audit_written_rows_total") - written == 6


MIXED = Schema(
    (
        Feature('fee "%"'),
        Feature("channel", "categorical", ("atm", "pos")),
        Feature("country", "categorical", ("DE", "FR"), optional=True),
        Feature("card_present", "boolean", optional=True),
        Feature("tip", optional=True),
    ),
    label="fraud",
)


def test_features_are_kept_as_sent_in_any_schema(audit_dsn: str) -> None:
    sent = {
        'fee "%"': [12.34, 0.1, 3.0],
        "channel": np.array(["atm", "app", "pos"], object),  # "app" is unknown to the model
        "country": np.array(["FR", None, "DE"], object),
        "card_present": [True, None, False],
        "tip": [None, 1.5, None],
    }
    x = MIXED.encode(sent)
    assert np.isnan(x[1, 1]) and np.isnan(x[1, 2])
    scores = np.array([0.1, 0.9, 0.2], np.float32)
    log = AuditLog(audit_dsn, buffer_rows=100, schema=MIXED, flush_interval_s=0.05)
    log.start()
    text = {name: sent[name] for name in ("channel", "country")}
    log.record("sent", x, scores, scores > 0.5, "1", "champion", 0.001, text)
    log.record("codes only", x[:1], scores[:1], scores[:1] > 0.5, "1", "champion", 0.001)
    log.close()

    with psycopg.connect(audit_dsn) as conn:
        query = f"SELECT request_id, features FROM {auditdb.TABLE} ORDER BY request_id DESC, row_index"
        rows = conn.execute(query).fetchall()
    expected = [dict(zip(MIXED.names, values, strict=True)) for values in zip(*sent.values(), strict=True)]
    assert rows == [("sent", row) for row in expected] + [("codes only", expected[0])]


def test_keeps_serving_through_an_outage_and_recovers(
    audit_dsn: str, postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    dropped = counter("fraud_audit_dropped_rows_total")
    caplog.set_level(logging.INFO, logger="model_server.audit")
    log = AuditLog(audit_dsn, buffer_rows=100, schema=NUMERIC, flush_interval_s=0.05, max_backoff_s=0.5)
    log.start()
    features, scores, decisions = scored(10)
    log.record("before", features, scores, decisions, "1", "champion", 0.001)
    wait_for(lambda: audit_rows(audit_dsn) == 10)
    # The writer logs its state after the commit the query above can already see.
    wait_for(lambda: any("writing to the database" in r.getMessage() for r in caplog.records))
    caplog.clear()  # count only the state changes of the outage
    postgres.stop()
    try:
        slowest = 0.0
        for i in range(30):  # 300 rows into a 100-row buffer
            started = time.perf_counter()
            log.record(f"during-{i}", features, scores, decisions, "1", "champion", 0.001)
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.02)
        assert slowest < 0.5, "record() must not wait for the database"
        wait_for(lambda: counter("fraud_audit_dropped_rows_total") - dropped >= 200)
    finally:
        postgres.start()

    wait_for(lambda: audit_rows(audit_dsn) == 110)
    log.close()
    assert counter("fraud_audit_dropped_rows_total") - dropped == 200
    with psycopg.connect(audit_dsn) as conn:
        kept = conn.execute(f"SELECT DISTINCT request_id FROM {auditdb.TABLE} ORDER BY 1").fetchall()
    assert [r[0] for r in kept] == ["before", *sorted(f"during-{i}" for i in range(20, 30))]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1, messages
    assert sum("writing to the database" in m for m in messages) == 1, messages


def test_starts_and_closes_without_a_database() -> None:
    dropped = counter("fraud_audit_dropped_rows_total")
    log = AuditLog("postgresql://fraud@127.0.0.1:1/fraud", buffer_rows=5, schema=NUMERIC, max_backoff_s=0.1)
    log.start()
    writer = log._thread
    assert writer is not None and writer.is_alive()
    features, scores, decisions = scored(3)
    for i in range(4):
        log.record(f"r{i}", features, scores, decisions, "1", "champion", 0.001)
    # A buffer of 5 rows keeps the newest request of 3 rows: the three older ones are dropped.
    assert counter("fraud_audit_dropped_rows_total") - dropped == 9
    started = time.monotonic()
    log.close(timeout_s=5)
    assert time.monotonic() - started < 5, "close() waited for its whole timeout"
    assert not writer.is_alive(), "the writer thread is still running after close()"


def test_rows_the_database_refuses_are_dropped_not_retried(audit_dsn: str) -> None:
    dropped = counter("fraud_audit_dropped_rows_total")
    log = AuditLog(audit_dsn, buffer_rows=100, schema=NUMERIC, flush_interval_s=0.05)
    log.start()
    features, scores, decisions = scored(2)
    log.record("nul\x00byte", features, scores, decisions, "1", "champion", 0.001)
    wait_for(lambda: counter("fraud_audit_dropped_rows_total") - dropped == 2)
    log.record("fine", features, scores, decisions, "1", "champion", 0.001)
    wait_for(lambda: audit_rows(audit_dsn) == 2)
    log.close()


def _first_features(x: np.ndarray, top_k: int) -> Reasons:
    """Stand-in explainer: the first `top_k` features, valued by the row's first value."""
    names = np.array([[f"f{i}" for i in range(top_k)]] * len(x), object)
    return Reasons(names, np.repeat(x[:, :1], top_k, axis=1).astype(np.float32))


@pytest.mark.parametrize("which", ["flagged", "all", "none"])
def test_reasons_are_kept_for_the_rows_the_setting_names(audit_dsn: str, which: AuditReasons) -> None:
    """Computed in the writer unless the request brought its own (those are kept as they were)."""
    log = AuditLog(audit_dsn, 1_000, NUMERIC, explain=_first_features, reasons=which, flush_interval_s=0.05)
    log.start()
    features, scores, decisions = scored(6, seed=3)
    brought = Reasons(np.full((6, 4), "f29", object), np.full((6, 4), 9.0, np.float32))
    log.record("computed", features, scores, decisions, "1", "champion", 0.001)
    log.record("brought", features, scores, decisions, "1", "champion", 0.001, reasons=brought)
    log.close()
    with psycopg.connect(audit_dsn) as conn:
        rows = conn.execute(
            f"SELECT request_id, row_index, decision, reasons FROM {auditdb.TABLE} ORDER BY 1, 2"
        ).fetchall()
    assert len(rows) == 12
    for request_id, index, decision, reasons in rows:
        if which == "none" or (which == "flagged" and not decision):
            assert reasons is None
        elif request_id == "brought":
            assert reasons == [{"feature": "f29", "contribution": 9.0}] * 4
        else:
            assert [r["feature"] for r in reasons] == ["f0", "f1", "f2", "f3"]
            assert reasons[0]["contribution"] == pytest.approx(float(features[index, 0]))
