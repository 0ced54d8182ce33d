"""`fraud labels ingest`: ground truth attached to logged transactions by request id."""

import re
from pathlib import Path

import numpy as np
import psycopg
import pytest

from fraudcore import auditdb
from fraudcore.errors import DataValidationError
from fraudcore.schema import Schema
from jobs.feedback.labels import read_labels
from model_server.audit import AuditLog
from tests.pg import Fraud


@pytest.fixture
def logged(audit_dsn: str) -> str:
    """Two requests in the audit log: `a` with three rows, `b` with one."""
    log = AuditLog(audit_dsn, buffer_rows=100, schema=Schema.numeric(["x", "y"]), flush_interval_s=0.05)
    log.start()
    features = np.zeros((3, 2), np.float32)
    scores = np.array([0.1, 0.9, 0.2], np.float32)
    log.record("a", features, scores, scores > 0.5, "1", "champion", 0.001)
    log.record("b", features[:1], scores[:1], scores[:1] > 0.5, "1", "champion", 0.001)
    log.close()
    return audit_dsn


def labels_in_db(dsn: str) -> list[tuple[str, int, int | None]]:
    with psycopg.connect(dsn) as conn:
        query = f"SELECT request_id, row_index, label FROM {auditdb.TABLE} ORDER BY 1, 2"
        return [(r[0], r[1], r[2]) for r in conn.execute(query).fetchall()]


def test_labels_rows_by_request_and_position(logged: str, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,row,label\na,1,1\na,0,0\nb,,0\nunknown,0,1\n")
    result = fraud("labels", "ingest", str(path), FRAUD_AUDIT_DSN=logged)
    assert result.code == 0, result.err
    assert "labelled 3 logged transaction(s) from 4 label line(s)" in result.out
    assert "1 label line(s) matched no logged transaction" in result.out
    assert labels_in_db(logged) == [("a", 0, 0), ("a", 1, 1), ("a", 2, None), ("b", 0, 0)]

    path.write_text("request_id,label\na,1\n")  # a whole request; later labels replace earlier ones
    assert fraud("labels", "ingest", str(path), FRAUD_AUDIT_DSN=logged).code == 0
    assert labels_in_db(logged)[:3] == [("a", 0, 1), ("a", 1, 1), ("a", 2, 1)]


def test_labels_that_match_nothing_fail(logged: str, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nnope,1\n")
    result = fraud("labels", "ingest", str(path), FRAUD_AUDIT_DSN=logged)
    assert result.code == 1
    assert result.err.strip() == f"error: none of the 1 labels in {path} matches a logged transaction"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a readable CSV file"),
        ("request_id\na\n", "missing column(s) label; expected request_id,label[,row]"),
        ("request_id,label,when\na,1,x\n", "unexpected column(s) when"),
        ("request_id,label\n", "no labels"),
        ("request_id,label\na,1\nb,yes\n", "line 3: label must be 0 or 1"),
        ("request_id,label\n ,1\n", "line 2: empty request_id"),
        ("request_id,row,label\na,-1,1\n", "line 2: row must be a whole number >= 0"),
        ("request_id,row,label\na,0,1\na,0,0\n", "line 2: the same transaction is labelled more than once"),
    ],
)
def test_bad_label_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(DataValidationError, match=re.escape(message)):
        read_labels(path)


def test_bad_file_or_database_is_one_line(tmp_path: Path, fraud: Fraud) -> None:
    missing = fraud(
        "labels", "ingest", str(tmp_path / "nope.csv"), FRAUD_AUDIT_DSN="postgresql://x@127.0.0.1:1/x"
    )
    assert (missing.code, missing.err.strip()) == (1, f"error: {tmp_path / 'nope.csv'}: no such file")
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\na,1\n")
    down = fraud("labels", "ingest", str(path), FRAUD_AUDIT_DSN="postgresql://fraud@127.0.0.1:1/fraud")
    assert down.code == 1
    assert down.err.startswith("error: audit database unreachable:")
    assert len(down.err.strip().splitlines()) == 1
