"""The audit trail end to end: `fraud serve` with FRAUD_AUDIT_DSN, traffic from `fraud traffic send`,
rows in PostgreSQL under the clients' request ids, labels attached with `fraud labels ingest`."""

import sys
from pathlib import Path

import psycopg
import pytest

from fraudcore import auditdb
from tests.conftest import TEST_FRAUD_RATE, TrainedStore
from tests.model_server.test_server import server_env
from tests.pg import Fraud
from tests.support import running, start_server
from training.synthetic import generate


def test_scored_traffic_is_audited_and_labelled(
    trained_store: TrainedStore, audit_dsn: str, tmp_path: Path, fraud: Fraud
) -> None:
    home = str(trained_store.settings.home)
    env = server_env(trained_store.settings.home, FRAUD_AUDIT_DSN=audit_dsn)
    command = [
        str(Path(sys.executable).with_name("fraud")),
        "serve",
        "--port",
        "{port}",
        "--role",
        "champion",
    ]
    # Stopped by SIGINT when the block ends: a clean shutdown flushes the audit buffer.
    server = start_server(command, tmp_path, env, probe="/v2/health/ready")
    with running(server):
        server.wait()
        data = tmp_path / "traffic.csv"
        frame = generate(rows=500, seed=21, fraud_rate=TEST_FRAUD_RATE)
        frame.to_csv(data, index=False)
        labels = tmp_path / "labels.csv"
        args = ("--url", server.url, "--batch", "50", "--labels-out", str(labels), "--request-prefix", "t")
        sent = fraud("traffic", "send", str(data), *args, FRAUD_HOME=home)
        assert sent.code == 0, sent.err
        assert "scored 500 transactions in 10 requests" in sent.out
        assert "(version 1: 10)" in sent.out
    assert server.process.returncode == 0, server.log.read_text()[-3000:]

    with psycopg.connect(audit_dsn) as conn:
        requests = conn.execute(
            f"SELECT request_id, count(*), min(role), min(model_version), max(latency_s) > 0 "
            f"FROM {auditdb.TABLE} GROUP BY request_id ORDER BY request_id"
        ).fetchall()
        amount = conn.execute(
            f"SELECT features->'Amount' FROM {auditdb.TABLE} WHERE request_id = 't-000003' AND row_index = 7"
        ).fetchone()
    assert requests == [(f"t-{i:06d}", 50, "champion", "1", True) for i in range(10)]
    assert amount is not None
    assert amount[0] == pytest.approx(frame["Amount"][157], rel=1e-6)

    ingested = fraud("labels", "ingest", str(labels), FRAUD_AUDIT_DSN=audit_dsn)
    assert ingested.code == 0, ingested.err
    assert "labelled 500 logged transaction(s) from 500 label line(s)" in ingested.out
