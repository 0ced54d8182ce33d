"""What the audit log costs a request, and how many rows a second its writer thread puts in the table.

Each simulated request scores one transaction of the credit-card schema (a logistic scorer in numpy,
as small as real inference gets) and then calls `AuditLog.record()`. Three runs: no audit log, audit
log writing to a live PostgreSQL, audit log whose database is down. Prints p50/p99/max of `record()`
itself and of the whole handler, so the added p99 is the difference to the first row.

Then the writer alone: `--writer-rows` rows in batches of 5,000 (requests of 1 and of 100 rows),
each batch recorded first and the wait until it is committed timed, for the credit-card schema and
for a schema of the same width with categorical and boolean features (its categories sent as text).

    uv run python benchmarks/audit_record.py --dsn "$(scripts/postgres.sh start)" [--rate 500 --seconds 20]
"""

import argparse
import asyncio
import time

import numpy as np
from prometheus_client import REGISTRY

from fraudcore import auditdb
from fraudcore.schema import Feature, Schema
from model_server.audit import AuditLog
from training.synthetic import FEATURES

DOWN_DSN = "postgresql://fraud@127.0.0.1:1/fraud"
CREDIT_CARD = Schema.numeric(FEATURES)
MIXED = Schema(
    (
        *(Feature(f"number{i}") for i in range(26)),
        Feature("channel", "categorical", ("atm", "pos", "web")),
        Feature("country", "categorical", tuple(f"c{i:02d}" for i in range(40))),
        Feature("card_present", "boolean"),
        Feature("note", "categorical", ("a", "b"), optional=True),
    )
)
"""A schema as wide as the credit-card one with categorical (one optional) and boolean features."""


async def drive(log: AuditLog | None, rate: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Call the handler `rate` times a second; returns record() and handler durations in seconds."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(30).astype(np.float32)
    n = int(rate * seconds)
    record_s, handler_s = np.zeros(n), np.zeros(n)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        began = time.perf_counter()
        features = rng.standard_normal((1, 30)).astype(np.float32)
        scores = 1 / (1 + np.exp(-(features @ weights)))
        recorded = time.perf_counter()
        if log is not None:
            log.record(f"req-{i}", features, scores, scores > 0.5, "1", "champion", recorded - began)
        done = time.perf_counter()
        record_s[i], handler_s[i] = done - recorded, done - began
    return record_s, handler_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN of a live audit database.")
    parser.add_argument("--rate", type=float, default=500.0, help="Requests per second.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each run.")
    parser.add_argument("--writer-rows", type=int, default=100_000, help="Rows per writer run.")
    args = parser.parse_args()

    print(f"{'audit log':<22}{'record p50':>12}{'record p99':>12}{'record max':>12}{'handler p99':>13}")
    for label, dsn in (("off", None), ("live PostgreSQL", args.dsn), ("database down", DOWN_DSN)):
        log = AuditLog(dsn, buffer_rows=50_000, schema=CREDIT_CARD) if dsn else None
        if log is not None:
            log.start()
        record_s, handler_s = asyncio.run(drive(log, args.rate, args.seconds))
        if log is not None:
            log.close(timeout_s=5)
        r50, r99, rmax = (np.percentile(record_s, [50, 99, 100]) * 1e6).tolist()
        h99 = float(np.percentile(handler_s, 99) * 1e6)
        print(f"{label:<22}{r50:>10.1f}µs{r99:>10.1f}µs{rmax:>10.1f}µs{h99:>11.1f}µs")

    print(f"\n{'writer':<22}{'rows/request':>14}{'rows/s':>10}")
    for label, schema in (("credit-card schema", CREDIT_CARD), ("mixed schema", MIXED)):
        for per_request in (1, 100):
            rate = writer_rate(args.dsn, schema, args.writer_rows, per_request)
            print(f"{label:<22}{per_request:>14}{rate:>10,.0f}")


def writer_rate(dsn: str, schema: Schema, rows: int, per_request: int, batch_rows: int = 5_000) -> float:
    """Rows per second the writer commits in batches of `batch_rows` (what it takes at a time under
    load): each batch is recorded first, then only the wait until it is written is timed."""
    with auditdb.connect(dsn) as conn:
        conn.execute(f"TRUNCATE {auditdb.TABLE}")
    x, text = encoded_rows(schema, rows)
    scores = np.random.default_rng(2).random(rows).astype(np.float32)
    log = AuditLog(dsn, rows, schema, batch_rows=batch_rows, flush_interval_s=3_600)
    log.start()
    waited = 0.0
    for first in range(0, rows, batch_rows):
        written = written_rows()
        for start in range(first, min(first + batch_rows, rows), per_request):
            part = slice(start, start + per_request)
            sent = {name: values[part] for name, values in text.items()}
            log.record(f"w-{start}", x[part], scores[part], scores[part] > 0.5, "1", "champion", 0.001, sent)
        began = time.perf_counter()
        while written_rows() - written < min(batch_rows, rows - first):
            if time.perf_counter() - began > 60:
                raise SystemExit("the writer wrote nothing for a minute: see its log line above")
            time.sleep(0.000_5)
        waited += time.perf_counter() - began
    log.close()
    return rows / waited


def encoded_rows(schema: Schema, rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random encoded rows of the schema and the text of their categories (a tenth of an optional
    feature's values missing)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, len(schema))).astype(np.float32)
    text = {}
    for i, feature in enumerate(schema.features):
        if feature.kind == "categorical":
            x[:, i] = rng.integers(len(feature.categories), size=rows)
            text[feature.name] = np.asarray(feature.categories, object)[x[:, i].astype(int)]
            if feature.optional:
                missing = rng.random(rows) < 0.1
                x[missing, i], text[feature.name][missing] = np.nan, None
        elif feature.kind == "boolean":
            x[:, i] = rng.integers(2, size=rows)
    return x, text


def written_rows() -> float:
    return REGISTRY.get_sample_value("fraud_audit_written_rows_total") or 0.0


if __name__ == "__main__":
    main()
