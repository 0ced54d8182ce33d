"""A window of scored transactions for the drift and retraining jobs: from the audit log or a CSV file."""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from fraudcore.settings import Settings
from training.data import load_csv
from training.synthetic import FEATURES, LABEL  # stopgap: until drift reads the schema

UNLABELLED = -1


@dataclass(frozen=True)
class Window:
    """Features `[n, 30]` float32 in canonical order and labels (`UNLABELLED` where none is known)."""

    features: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.features)

    @property
    def labelled(self) -> np.ndarray:
        return self.labels != UNLABELLED

    def labelled_frame(self) -> pd.DataFrame:
        """The labelled rows in the training schema (`Time, V1..V28, Amount, Class`)."""
        mask = self.labelled
        frame = pd.DataFrame(self.features[mask].astype(np.float64), columns=list(FEATURES))
        frame[LABEL] = self.labels[mask].astype(np.int64)
        return frame


def from_audit_log(
    settings: Settings, rows: int, since: timedelta | None = None, labelled_only: bool = False
) -> Window:
    """The `rows` most recently scored transactions, optionally only those younger than `since`."""
    conditions = [sql.SQL("TRUE")]
    params: list[object] = []
    if since is not None:
        conditions.append(sql.SQL("scored_at >= now() - %s"))
        params.append(since)
    if labelled_only:
        conditions.append(sql.SQL("label IS NOT NULL"))
    select = "SELECT {}, coalesce(label, {}) FROM {} WHERE {} ORDER BY scored_at DESC LIMIT %s"
    query = sql.SQL(select).format(
        sql.SQL(", ").join(map(sql.Identifier, auditdb.FEATURE_COLUMNS)),
        sql.Literal(UNLABELLED),
        sql.Identifier(auditdb.TABLE),
        sql.SQL(" AND ").join(conditions),
    )
    try:
        with auditdb.connect(settings.audit_dsn) as conn, conn.cursor(binary=True) as cur:
            cur.execute(query, [*params, rows])
            records = cur.fetchall()
    except psycopg.Error as e:
        raise UnavailableError(f"reading the audit log failed: {auditdb.describe(e)}") from e
    values = np.array(records, dtype=np.float64).reshape(len(records), len(FEATURES) + 1)
    span = f"last {rows:,} rows" + (f" of the last {_age(since)}" if since is not None else "")
    return Window(values[:, :-1].astype(np.float32), values[:, -1].astype(np.int64), f"audit log ({span})")


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def from_csv(path: Path) -> Window:
    """Transactions in the credit-card schema; the `Class` column is optional (no labels without it)."""
    frame = load_csv(path)
    labelled = LABEL in frame.columns
    labels = frame[LABEL].to_numpy(np.int64) if labelled else np.full(len(frame), UNLABELLED, np.int64)
    return Window(frame[list(FEATURES)].to_numpy(np.float32), labels, str(path))
