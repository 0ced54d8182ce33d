"""The prediction audit table in PostgreSQL: one row per scored transaction, its label added later.

The predictor writes it (`model_server.audit`); the drift, labels and retraining jobs read and update
it. Feature columns are the canonical features in lower case (`time`, `v1` … `v28`, `amount`).
"""

import psycopg
from psycopg import sql

from fraudcore.errors import UnavailableError
from training.synthetic import FEATURES  # stopgap: the credit-card table until the audit rewrite

TABLE = "prediction_audit"
FEATURE_COLUMNS: tuple[str, ...] = tuple(name.lower() for name in FEATURES)
WRITE_COLUMNS: tuple[str, ...] = (
    "request_id",
    "row_index",
    "scored_at",
    *FEATURE_COLUMNS,
    "score",
    "decision",
    "model_version",
    "role",
    "latency_s",
)
"""Columns the predictor writes, in COPY order; `label` and `labelled_at` are filled later."""

_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    request_id text NOT NULL,
    row_index integer NOT NULL,
    scored_at timestamptz NOT NULL,
    {", ".join(f"{column} real NOT NULL" for column in FEATURE_COLUMNS)},
    score real NOT NULL,
    decision boolean NOT NULL,
    model_version text NOT NULL,
    role text NOT NULL,
    latency_s real NOT NULL,
    label smallint CHECK (label IN (0, 1)),
    labelled_at timestamptz
);
CREATE INDEX IF NOT EXISTS {TABLE}_scored_at ON {TABLE} (scored_at);
CREATE INDEX IF NOT EXISTS {TABLE}_request ON {TABLE} (request_id, row_index);
"""
_DDL_LOCK = 7_350_221  # advisory lock key: replicas starting together create the table once


def ensure_table(conn: psycopg.Connection) -> None:
    """Create the table and its indexes when missing (safe to run from many processes at once)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        cur.execute(sql.SQL(_DDL))  # type: ignore[arg-type]


def connect(dsn: str | None, timeout_s: int = 5) -> psycopg.Connection:
    """An autocommit connection with the table in place, or UnavailableError naming the problem."""
    if not dsn:
        raise UnavailableError("no audit database configured (set FRAUD_AUDIT_DSN)")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=timeout_s)
        ensure_table(conn)
    except psycopg.Error as e:
        raise UnavailableError(f"audit database unreachable: {describe(e)}") from e
    return conn


def describe(error: Exception) -> str:
    """The first line of a database error, for one-line log messages."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
