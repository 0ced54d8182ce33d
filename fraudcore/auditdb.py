"""The prediction audit table in PostgreSQL: one row per scored transaction, its label added later.

The predictor writes it (`model_server.audit`); the drift, labels and retraining jobs read and update
it. Models differ in their inputs, so a row keeps its features in one `features` jsonb object, each
feature name mapped to its raw value (a number as the model scored it, a category as the client
sent it, a boolean, or null when missing), next to the `model_version` that scored it: a reader
takes the rows that carry the features of its schema.

A flagged row also keeps its reason codes in `reasons` (a jsonb array of `{"feature", "contribution"}`
objects, strongest first; null when not computed). That column came after the first release: a table
of that release gets it added in place. A table of any other layout (the per-feature one of earlier
development versions) is refused with one line rather than migrated.
"""

import psycopg
from psycopg import sql

from fraudcore.errors import UnavailableError

TABLE = "prediction_audit"
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("request_id", "text", "NOT NULL"),
    ("row_index", "integer", "NOT NULL"),
    ("scored_at", "timestamp with time zone", "NOT NULL"),
    ("features", "jsonb", "NOT NULL CHECK (jsonb_typeof(features) = 'object')"),
    ("score", "real", "NOT NULL"),
    ("decision", "boolean", "NOT NULL"),
    ("model_version", "text", "NOT NULL"),
    ("role", "text", "NOT NULL"),
    ("latency_s", "real", "NOT NULL"),
    ("label", "smallint", "CHECK (label IN (0, 1))"),
    ("labelled_at", "timestamp with time zone", ""),
    ("reasons", "jsonb", "CHECK (jsonb_typeof(reasons) = 'array')"),
)
"""Name, type (as `format_type` spells it) and constraints of every column, in table order."""
ADDED_COLUMNS = ("reasons",)
"""Columns added after the first release: added in place to a table that lacks them."""
_LABEL_COLUMNS = ("label", "labelled_at")
WRITE_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in _COLUMNS if name not in _LABEL_COLUMNS)
"""Columns the predictor writes, in COPY order; `label` and `labelled_at` are filled later."""

_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    {", ".join(" ".join(column).strip() for column in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS {TABLE}_scored_at ON {TABLE} (scored_at);
CREATE INDEX IF NOT EXISTS {TABLE}_request ON {TABLE} (request_id, row_index);
"""
_ADD = "".join(
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {' '.join(column)};"
    for column in _COLUMNS
    if column[0] in ADDED_COLUMNS
)
_LAYOUT = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
"""
_DDL_LOCK = 7_350_221  # advisory lock key: replicas starting together create the table once


def ensure_table(conn: psycopg.Connection) -> None:
    """Create the table and its indexes when missing, add the columns of later releases to a table
    of an earlier one (safe to run from many processes at once); raise UnavailableError naming the
    columns when an existing table has another layout, leaving it as it was."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        cur.execute(sql.SQL(_DDL))  # type: ignore[arg-type]
        cur.execute(_LAYOUT, (TABLE,))
        found = dict(cur.fetchall())
        differing = _differing(found, added=False)
        # Only when a column is missing: ALTER TABLE locks the table even when it changes nothing.
        if not differing and not found.keys() >= set(ADDED_COLUMNS):
            cur.execute(sql.SQL(_ADD))  # type: ignore[arg-type]
            cur.execute(_LAYOUT, (TABLE,))
            found = dict(cur.fetchall())
        differing = differing or _differing(found, added=True)
    if differing:
        raise UnavailableError(
            f"the audit table {TABLE} has another layout (an early development version's?): it lacks "
            f"{', '.join(differing)}; rename or drop it and a new one is created (there is no migration)"
        )


def _differing(found: dict[str, str], added: bool) -> list[str]:
    """The expected columns (those of later releases too, when `added`) missing from `found` or of
    another type."""
    expected = [(name, kind) for name, kind, _ in _COLUMNS if added or name not in ADDED_COLUMNS]
    return [f"{name} {kind}" for name, kind in expected if found.get(name) != kind]


def connect(dsn: str | None, timeout_s: int = 5) -> psycopg.Connection:
    """An autocommit connection with the table in place, or UnavailableError naming the problem."""
    if not dsn:
        raise UnavailableError("no audit database configured (set FRAUD_AUDIT_DSN)")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=timeout_s)
        try:
            ensure_table(conn)
        except BaseException:
            conn.close()
            raise
    except psycopg.Error as e:
        raise UnavailableError(f"audit database unreachable: {describe(e)}") from e
    return conn


def describe(error: Exception) -> str:
    """The first line of a database error, for one-line log messages."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
