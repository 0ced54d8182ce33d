"""The audit table: created once in the schema-agnostic layout; a table of another layout is refused
with one line that says what to do."""

from pathlib import Path

import psycopg
import pytest

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from tests.pg import Fraud


def test_creates_the_table_and_accepts_its_own_layout(audit_dsn: str) -> None:
    for _ in range(2):
        auditdb.connect(audit_dsn).close()
    with psycopg.connect(audit_dsn) as conn:
        kind = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = 'features'",
            (auditdb.TABLE,),
        ).fetchone()
    assert kind == ("jsonb",)


def test_a_table_of_the_per_feature_layout_is_refused(audit_dsn: str, tmp_path: Path, fraud: Fraud) -> None:
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {auditdb.TABLE} (request_id text, row_index integer, scored_at timestamptz, "
            "time real, v1 real, amount real, score real, decision boolean, model_version text, role text, "
            "latency_s real, label smallint, labelled_at timestamptz)"
        )
    with pytest.raises(UnavailableError, match="it lacks features jsonb; rename or drop it"):
        auditdb.connect(audit_dsn)

    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\na,1\n")
    result = fraud("labels", "ingest", str(labels), FRAUD_AUDIT_DSN=audit_dsn)
    assert result.code == 1
    assert result.err.startswith(f"error: the audit table {auditdb.TABLE} has another layout")
    assert len(result.err.strip().splitlines()) == 1


def test_a_table_of_the_first_release_gets_the_reasons_column(audit_dsn: str) -> None:
    """The layout released before reason codes: the column is added in place, rows kept."""
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {auditdb.TABLE} (request_id text NOT NULL, row_index integer NOT NULL, "
            "scored_at timestamp with time zone NOT NULL, features jsonb NOT NULL, score real NOT NULL, "
            "decision boolean NOT NULL, model_version text NOT NULL, role text NOT NULL, "
            "latency_s real NOT NULL, label smallint, labelled_at timestamp with time zone)"
        )
        conn.execute(
            f"INSERT INTO {auditdb.TABLE} VALUES ('a', 0, now(), '{{}}', 0.9, true, '1', 'champion', 0.001)"
        )
    for _ in range(2):
        auditdb.connect(audit_dsn).close()
    with psycopg.connect(audit_dsn) as conn:
        assert conn.execute(f"SELECT request_id, reasons FROM {auditdb.TABLE}").fetchall() == [("a", None)]
