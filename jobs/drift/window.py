"""A window of scored transactions in one model's schema, for the drift, retraining and traffic jobs:
from the audit log or a CSV file.

The raw values are kept next to the encoded matrix: the drift check tests what the model scores
(an unknown category is NaN there), while retraining must learn the category as it was sent.
"""

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from fraudcore.schema import Schema
from fraudcore.settings import Settings
from training.data import load_table, text_dtypes, validate

UNLABELLED = -1
_RECORD_TYPES = {"numeric": sql.SQL("float8"), "categorical": sql.SQL("text"), "boolean": sql.SQL("boolean")}
"""The SQL type each kind of feature is read as from the audit log's `features` object."""


@dataclass(frozen=True, eq=False)
class Window:
    """Transactions in `schema`: raw values (`frame`: numbers as float64, categories as text,
    booleans as True/False, a missing value as NaN or None), labels (`UNLABELLED` where none is
    known) and where they came from."""

    schema: Schema
    frame: pd.DataFrame
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def features(self) -> np.ndarray:
        """The encoded `[n, k]` float32 matrix in schema order, as the model scores it."""
        return self.schema.encode(self.frame)

    @property
    def labelled(self) -> np.ndarray:
        return self.labels != UNLABELLED

    def labelled_frame(self) -> pd.DataFrame:
        """The labelled rows as training data: raw values (categories as sent, known to the model or
        not) and the schema's label column."""
        mask = self.labelled
        frame = self.frame[mask].reset_index(drop=True)
        frame[self.schema.label] = self.labels[mask]
        return frame


def from_frame(frame: pd.DataFrame, schema: Schema, source: str) -> Window:
    """Transactions with (at least) the schema's columns; labelled when the label column is there."""
    labelled = schema.label in frame.columns
    valid = validate(frame, schema, source, labelled)
    if not labelled:
        return Window(schema, _raw(valid, schema), np.full(len(valid), UNLABELLED, np.int64), source)
    labels = valid.pop(schema.label).to_numpy(np.int64)
    return Window(schema, _raw(valid, schema), labels, source)


def from_csv(path: Path, schema: Schema) -> Window:
    """Transactions in the model's schema; its label column is optional (no labels without it)."""
    return from_frame(load_table(path, text_dtypes(schema)), schema, str(path))


def from_audit_log(
    settings: Settings, schema: Schema, rows: int, since: timedelta | None = None, labelled_only: bool = False
) -> Window:
    """The `rows` most recently scored transactions that carry every required feature of `schema`
    (whichever version scored them), optionally only those younger than `since`."""
    query, params = _query(schema, since, labelled_only)
    try:
        with auditdb.connect(settings.audit_dsn) as conn, conn.cursor(binary=True) as cur:
            cur.execute(query, [*params, rows])
            records = cur.fetchall()
    except psycopg.Error as e:
        raise UnavailableError(f"reading the audit log failed: {auditdb.describe(e)}") from e
    source = f"audit log (last {rows:,} rows" + (f" of the last {_age(since)})" if since is not None else ")")
    if not records:
        empty = pd.DataFrame({name: [] for name in schema.names})
        return Window(schema, empty, np.empty(0, np.int64), source)
    columns = list(zip(*records, strict=True))
    frame = pd.DataFrame(dict(zip(schema.names, columns, strict=False)))  # the last column: labels
    labels = np.array(columns[-1], np.int64)
    return Window(schema, _raw(validate(frame, schema, source, labelled=False), schema), labels, source)


def _raw(valid: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A validated frame with its booleans (0/1 there) as True/False again, as they were sent: so
    they read back as booleans whatever the column type of the data they are added to."""
    for f in schema.features:
        if f.kind == "boolean":
            valid[f.name] = pd.Series([None if v != v else v == 1 for v in valid[f.name]], dtype=object)
    return valid


def _query(schema: Schema, since: timedelta | None, labelled_only: bool) -> tuple[sql.Composed, list[object]]:
    """Each row's features as the schema's columns (absent ones NULL), then its label."""
    record = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(f.name), _RECORD_TYPES[f.kind]) for f in schema.features
    )
    conditions = [
        sql.SQL("{} IS NOT NULL").format(sql.Identifier("r", f.name))
        for f in schema.features
        if not f.optional
    ]
    params: list[object] = []
    if since is not None:
        conditions.append(sql.SQL("a.scored_at >= now() - %s"))
        params.append(since)
    if labelled_only:
        conditions.append(sql.SQL("a.label IS NOT NULL"))
    query = sql.SQL(
        "SELECT r.*, coalesce(a.label, {}) FROM {} a, jsonb_to_record(a.features) AS r({}) "
        "WHERE {} ORDER BY a.scored_at DESC LIMIT %s"
    ).format(
        sql.Literal(UNLABELLED),
        sql.Identifier(auditdb.TABLE),
        record,
        sql.SQL(" AND ").join(conditions or [sql.SQL("TRUE")]),
    )
    return query, params


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
