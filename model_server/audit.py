"""Prediction audit log: every scored row goes to PostgreSQL from a background thread.

`record()` only appends to an in-memory buffer, so inference never waits for the database. A writer
thread COPYs the buffer in batches. While the database is unreachable the buffer keeps at most
`buffer_rows` rows, dropping the oldest (counted in `fraud_audit_dropped_rows_total`), and the
writer reconnects with exponential backoff; each change between reachable and unreachable is
logged once. Rows the database refuses (not an outage) are dropped and counted too, so they
cannot hold up the ones behind them.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import psycopg
from prometheus_client import Counter, Gauge
from psycopg import sql

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from fraudcore.schema import Schema

logger = logging.getLogger(__name__)

WRITTEN_ROWS = Counter("fraud_audit_written_rows", "Scored rows written to the audit log.")
DROPPED_ROWS = Counter(
    "fraud_audit_dropped_rows", "Scored rows dropped from a full audit buffer while the database was down."
)
BUFFERED_ROWS = Gauge("fraud_audit_buffered_rows", "Scored rows waiting to be written to the audit log.")

_COPY = sql.SQL("COPY {} ({}) FROM STDIN").format(
    sql.Identifier(auditdb.TABLE), sql.SQL(", ").join(map(sql.Identifier, auditdb.WRITE_COLUMNS))
)


class _Scored(NamedTuple):
    """One request's rows as the predictor handed them over (converted only in the writer)."""

    request_id: str
    scored_at: float
    features: np.ndarray
    text: Mapping[str, np.ndarray]
    scores: np.ndarray
    decisions: np.ndarray
    model_version: str
    role: str
    latency_s: float

    @property
    def rows(self) -> int:
        return len(self.scores)


class AuditLog:
    """Buffered, batched, outage-tolerant writer of scored transactions.

    Arrays passed to `record` are kept by reference until written: callers must not modify them.
    """

    def __init__(
        self,
        dsn: str,
        buffer_rows: int,
        schema: Schema,
        *,
        batch_rows: int = 5_000,
        flush_interval_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._capacity = buffer_rows
        self._batch_rows = batch_rows
        self._flush_interval_s = flush_interval_s
        self._max_backoff_s = max_backoff_s
        self._pending: deque[_Scored] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._reachable: bool | None = None

    def start(self) -> None:
        """Start the writer thread; the database is contacted from there, so this never fails."""
        if self._thread is None:
            BUFFERED_ROWS.set_function(lambda: self._pending_rows)
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what can still be written, then stop the writer and close the connection."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def record(
        self,
        request_id: str,
        features: np.ndarray,
        scores: np.ndarray,
        decisions: np.ndarray,
        model_version: str,
        role: str,
        latency_s: float,
        text: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Queue one request's scored rows; never blocks on the database.

        `features` is the encoded `[N, k]` matrix; `text` holds each categorical feature's values as
        sent (an unknown category is NaN in `features` but kept here as it was)."""
        scored = _Scored(
            request_id, time.time(), features, text or {}, scores, decisions, model_version, role, latency_s
        )
        with self._lock:
            before = self._pending_rows
            self._pending.append(scored)
            self._pending_rows += scored.rows
            dropped = self._trim()
            filled = before < self._batch_rows <= self._pending_rows
        if dropped:
            DROPPED_ROWS.inc(dropped)
        if filled:
            self._wake.set()

    def _trim(self) -> int:
        """Drop the oldest requests beyond capacity (caller holds the lock); returns rows dropped."""
        dropped = 0
        while self._pending_rows > self._capacity:
            rows = self._pending.popleft().rows
            self._pending_rows -= rows
            dropped += rows
        return dropped

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            if delay:
                self._stopping.wait(delay)
            else:
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
            written = self._flush()
            delay = 0.0 if written else min(max(2 * delay, 0.5), self._max_backoff_s)
        self._flush()
        if self._conn is not None:
            self._conn.close()

    def _flush(self) -> bool:
        """Write everything pending; on failure put it back (oldest first) and return False."""
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._pending_rows = 0
        if not batch:
            return True
        rows = sum(s.rows for s in batch)
        try:
            self._copy(batch)
        except (psycopg.OperationalError, psycopg.InterfaceError, UnavailableError) as e:
            self._requeue(batch)
            self._disconnect()
            self._set_reachable(False, auditdb.describe(e.__cause__ or e))
            return False
        except (psycopg.Error, ValueError, TypeError) as e:
            # Not an outage: retrying the same rows would fail again and hold up all later ones.
            self._disconnect()
            DROPPED_ROWS.inc(rows)
            logger.error("audit log: dropped %d rows the database refused: %s", rows, auditdb.describe(e))
            return True
        WRITTEN_ROWS.inc(rows)
        self._set_reachable(True)
        return True

    def _copy(self, batch: list[_Scored]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = auditdb.connect(self._dsn)
        with self._conn.cursor() as cur, cur.copy(_COPY) as copy:
            for scored in batch:
                at = datetime.fromtimestamp(scored.scored_at, UTC)
                tail = (scored.model_version, scored.role, scored.latency_s)
                features = np.asarray(scored.features, np.float32).reshape(scored.rows, -1).tolist()
                scores = np.asarray(scored.scores, np.float32).tolist()
                decisions = np.asarray(scored.decisions, bool).tolist()
                for index, (row, score, decision) in enumerate(zip(features, scores, decisions, strict=True)):
                    copy.write_row((scored.request_id, index, at, *row, score, decision, *tail))

    def _requeue(self, batch: list[_Scored]) -> None:
        with self._lock:
            self._pending.extendleft(reversed(batch))
            self._pending_rows += sum(s.rows for s in batch)
            dropped = self._trim()
        if dropped:
            DROPPED_ROWS.inc(dropped)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _set_reachable(self, reachable: bool, reason: str = "") -> None:
        if reachable == self._reachable:
            return
        if reachable:
            logger.info("audit log: writing to the database")
        else:
            logger.warning(
                "audit log: database unreachable (%s); buffering up to %d rows, retrying with backoff",
                reason,
                self._capacity,
            )
        self._reachable = reachable
