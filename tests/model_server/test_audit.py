"""The audit writer against a real PostgreSQL: batched writes, the outage path, recovery."""

import logging
import time
from collections.abc import Callable

import numpy as np
import psycopg
import pytest
from prometheus_client import REGISTRY

from fraudcore import auditdb
from fraudcore.schema import Schema
from model_server.audit import AuditLog
from tests.pg import Postgres
from training.synthetic import FEATURES

CREDIT_CARD = Schema.numeric(FEATURES)


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
    log = AuditLog(audit_dsn, 1_000, CREDIT_CARD, flush_interval_s=0.05)
    log.start()
    features, scores, decisions = scored(5)
    log.record("req-a", features, scores, decisions, "3", "champion", 0.004)
    log.record("req-b", features[:1], scores[:1], decisions[:1], "4", "challenger", 0.002)
    log.close()

    with psycopg.connect(audit_dsn) as conn:
        rows = conn.execute(
            f"SELECT request_id, row_index, v1, amount, score, decision, model_version, role, latency_s, "
            f"label, scored_at > now() - interval '1 minute' FROM {auditdb.TABLE} "
            "ORDER BY request_id, row_index"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("req-a", i) for i in range(5)] + [("req-b", 0)]
    first = rows[0]
    assert first[2:4] == pytest.approx((features[0, 1], features[0, 29]))
    assert first[4:6] == (pytest.approx(scores[0]), bool(decisions[0]))
    assert first[6:10] == ("3", "champion", pytest.approx(0.004), None)
    assert first[10] is True
    assert rows[-1][6:8] == ("4", "challenger")
    assert counter("fraud_audit_written_rows_total") - written == 6


def test_keeps_serving_through_an_outage_and_recovers(
    audit_dsn: str, postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    dropped = counter("fraud_audit_dropped_rows_total")
    caplog.set_level(logging.INFO, logger="model_server.audit")
    log = AuditLog(audit_dsn, 100, CREDIT_CARD, flush_interval_s=0.05, max_backoff_s=0.5)
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
    log = AuditLog("postgresql://fraud@127.0.0.1:1/fraud", 5, CREDIT_CARD, max_backoff_s=0.1)
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
    log = AuditLog(audit_dsn, 100, CREDIT_CARD, flush_interval_s=0.05)
    log.start()
    features, scores, decisions = scored(2)
    log.record("nul\x00byte", features, scores, decisions, "1", "champion", 0.001)
    wait_for(lambda: counter("fraud_audit_dropped_rows_total") - dropped == 2)
    log.record("fine", features, scores, decisions, "1", "champion", 0.001)
    wait_for(lambda: audit_rows(audit_dsn) == 2)
    log.close()
