"""Prediction audit log: every scored row goes to PostgreSQL from a background thread.

`record()` only appends to an in-memory buffer, so inference never waits for the database. A writer
thread COPYs the buffer in batches. While the database is unreachable the buffer keeps at most
`buffer_rows` rows, dropping the oldest (counted in `fraud_audit_dropped_rows_total`), and the
writer reconnects with exponential backoff; each change between reachable and unreachable is
logged once. Rows the database refuses (not an outage) are dropped and counted too, so they
cannot hold up the ones behind them.

Each row's features become one JSON object (`fraudcore.auditdb`) in the writer, never in `record()`:
numbers as the model scored them (the shortest text of their float32 value, so 12.34 stays 12.34),
booleans as true/false, categorical values as the client sent them (an unknown category too), and
null for a missing value.

A flagged row (or every row, or none: `FRAUD_AUDIT_REASONS`) also gets its reason codes, computed in
the writer too, in one call for all rows of a batch; a request that asked for reasons hands over
the ones it answered with, and those are kept instead.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import orjson
import psycopg
from prometheus_client import Counter, Gauge
from psycopg import sql

from fraudcore import auditdb
from fraudcore.errors import UnavailableError
from fraudcore.reasons import DEFAULT_TOP_K, Reasons
from fraudcore.schema import Schema
from fraudcore.settings import AuditReasons

logger = logging.getLogger(__name__)

WRITTEN_ROWS = Counter("fraud_audit_written_rows", "Scored rows written to the audit log.")
DROPPED_ROWS = Counter(
    "fraud_audit_dropped_rows", "Scored rows dropped from a full audit buffer while the database was down."
)
BUFFERED_ROWS = Gauge("fraud_audit_buffered_rows", "Scored rows waiting to be written to the audit log.")

_COPY = sql.SQL("COPY {} ({}) FROM STDIN").format(
    sql.Identifier(auditdb.TABLE), sql.SQL(", ").join(map(sql.Identifier, auditdb.WRITE_COLUMNS))
)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_BOOLEAN = {0.0: b"false", 1.0: b"true"}


class _Scored(NamedTuple):
    """One request's rows as the predictor handed them over (converted only in the writer)."""

    request_id: str
    scored_at: float
    features: np.ndarray
    text: Mapping[str, np.ndarray] | None
    scores: np.ndarray
    decisions: np.ndarray
    model_version: str
    role: str
    latency_s: float
    reasons: Reasons | None

    @property
    def rows(self) -> int:
        return len(self.scores)


class _Json:
    """Turns a batch of requests into each row's `features` JSON object, in one pass over all rows
    (most requests hold one row: per-request work would dominate)."""

    def __init__(self, schema: Schema) -> None:
        keys = (orjson.dumps(name).replace(b"%", b"%%") for name in schema.names)
        self._template = b"{" + b",".join(key + b":%b" for key in keys) + b"}"
        self._booleans = [i for i, f in enumerate(schema.features) if f.kind == "boolean"]
        self._categorical = [
            (i, f.name, [orjson.dumps(c) for c in f.categories])
            for i, f in enumerate(schema.features)
            if f.kind == "categorical"
        ]

    def objects(self, batch: list[_Scored]) -> list[str]:
        sizes = [s.rows for s in batch]
        x = np.concatenate(
            [np.asarray(s.features, np.float32).reshape(n, -1) for s, n in zip(batch, sizes, strict=True)]
        )
        replaced = [(i, [_BOOLEAN.get(v, b"null") for v in x[:, i].tolist()]) for i in self._booleans]
        replaced += [
            (i, _categories(batch, sizes, name, known, x[:, i])) for i, name, known in self._categorical
        ]
        lines = orjson.dumps(x, option=_NUMPY)[2:-2].split(b"],[") if len(x) else []  # NaN → null
        objects = []
        for r, line in enumerate(lines):  # row by row: a list per row for all rows would keep the GC busy
            row = line.split(b",")
            for i, values in replaced:
                row[i] = values[r]
            objects.append((self._template % tuple(row)).decode())
        return objects


def _categories(
    batch: list[_Scored], sizes: list[int], name: str, known: list[bytes], codes: np.ndarray
) -> list[bytes]:
    """Each row's category: the text sent where it was handed over, else the known one of its code."""
    values = [b"null" if v != v else known[int(v)] for v in codes.tolist()]
    start = 0
    for scored, rows in zip(batch, sizes, strict=True):
        if scored.text is not None and name in scored.text:
            values[start : start + rows] = _sent(scored.text[name], rows)
        start += rows
    return values


def _sent(values: np.ndarray, rows: int) -> list[bytes]:
    if len(values) != rows:
        raise ValueError(f"{len(values)} categorical values sent for {rows} rows")
    return [orjson.dumps(value, _decoded, _NUMPY) for value in values]


def _decoded(value: object) -> str:
    """BYTES tensors decoded by the binary extension hold bytes: their text is what was sent."""
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"a categorical value must be text, not {type(value).__name__}")


Explain = Callable[[np.ndarray, int], Reasons]
"""Reason codes of encoded rows: `(x, top_k) -> Reasons`."""


class _ReasonsJson:
    """Each row's `reasons` JSON array (None where it carries none), for a batch of requests: the
    rows that need reasons and did not bring them are explained in one call."""

    def __init__(self, explain: Explain | None, which: AuditReasons, top_k: int) -> None:
        self._explain = explain if which != "none" else None
        self._every_row = which == "all"
        self._top_k = top_k

    def arrays(self, batch: list[_Scored]) -> list[str | None]:
        if self._explain is None:
            return [None] * sum(s.rows for s in batch)
        wanted = [self._wanted(s) for s in batch]
        missing = [
            np.asarray(s.features, np.float32).reshape(s.rows, -1)[rows]
            for s, rows in zip(batch, wanted, strict=True)
            if rows.any() and not self._brought(s)
        ]
        try:
            computed = iter(
                self._rows(self._explain(np.concatenate(missing), self._top_k)) if missing else ()
            )
        except (ValueError, TypeError, LookupError) as e:  # the rows are kept, without their reasons
            logger.error("audit log: cannot compute reason codes, rows written without them: %s", e)
            return [None] * sum(s.rows for s in batch)
        arrays: list[str | None] = []
        for scored, rows in zip(batch, wanted, strict=True):
            brought = self._rows(scored.reasons) if self._brought(scored) else None
            for index, want in enumerate(rows.tolist()):
                if not want:
                    arrays.append(None)
                else:
                    arrays.append(brought[index] if brought is not None else next(computed))
        return arrays

    def _wanted(self, scored: _Scored) -> np.ndarray:
        if self._every_row:
            return np.ones(scored.rows, bool)
        return np.asarray(scored.decisions, bool).reshape(scored.rows)

    def _brought(self, scored: _Scored) -> bool:
        """The request's own reasons are kept when they hold at least as many per row."""
        return scored.reasons is not None and scored.reasons.values.shape[1] >= self._top_k

    def _rows(self, reasons: Reasons) -> list[str]:
        first = Reasons(reasons.names[:, : self._top_k], reasons.values[:, : self._top_k])
        return [orjson.dumps(row).decode() for row in first.as_json()]


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
        explain: Explain | None = None,
        reasons: AuditReasons = "flagged",
        batch_rows: int = 5_000,
        flush_interval_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._json = _Json(schema)
        self._reasons = _ReasonsJson(explain, reasons, min(DEFAULT_TOP_K, len(schema)))
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
        reasons: Reasons | None = None,
    ) -> None:
        """Queue one request's scored rows; never blocks on the database.

        `features` is the encoded `[N, k]` matrix; `text` holds each categorical feature's values as
        sent (an unknown category is NaN in `features` but kept here as it was); `reasons` are the
        rows' reason codes when the request asked for them."""
        scored = _Scored(
            request_id,
            time.time(),
            features,
            text,
            scores,
            decisions,
            model_version,
            role,
            latency_s,
            reasons,
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
        except (psycopg.Error, ValueError, TypeError, LookupError) as e:
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
        objects = iter(self._json.objects(batch))
        reasons = iter(self._reasons.arrays(batch))
        with self._conn.cursor() as cur, cur.copy(_COPY) as copy:
            for scored in batch:
                at = datetime.fromtimestamp(scored.scored_at, UTC)
                tail = (scored.model_version, scored.role, scored.latency_s)
                scores = np.asarray(scored.scores, np.float32).tolist()
                decisions = np.asarray(scored.decisions, bool).tolist()
                for index, (score, decision) in enumerate(zip(scores, decisions, strict=True)):
                    row = (scored.request_id, index, at, next(objects), score, decision, *tail, next(reasons))
                    copy.write_row(row)

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
