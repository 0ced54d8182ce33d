"""What the audit log costs a request: `record()` called at a steady request rate on an event loop.

Each simulated request scores one transaction (a logistic scorer in numpy, as small as real
inference gets) and then calls `AuditLog.record()`. Three runs: no audit log, audit log writing to a
live PostgreSQL, audit log whose database is down. Prints p50/p99/max of `record()` itself and of
the whole handler, so the added p99 is the difference to the first row.

    uv run python benchmarks/audit_record.py --dsn "$(scripts/postgres.sh start)" [--rate 500 --seconds 20]
"""

import argparse
import asyncio
import time

import numpy as np

from model_server.audit import AuditLog

DOWN_DSN = "postgresql://fraud@127.0.0.1:1/fraud"


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
    args = parser.parse_args()

    print(f"{'audit log':<22}{'record p50':>12}{'record p99':>12}{'record max':>12}{'handler p99':>13}")
    for label, dsn in (("off", None), ("live PostgreSQL", args.dsn), ("database down", DOWN_DSN)):
        log = AuditLog(dsn, buffer_rows=50_000) if dsn else None
        if log is not None:
            log.start()
        record_s, handler_s = asyncio.run(drive(log, args.rate, args.seconds))
        if log is not None:
            log.close(timeout_s=5)
        r50, r99, rmax = (np.percentile(record_s, [50, 99, 100]) * 1e6).tolist()
        h99 = float(np.percentile(handler_s, 99) * 1e6)
        print(f"{label:<22}{r50:>10.1f}µs{r99:>10.1f}µs{rmax:>10.1f}µs{h99:>11.1f}µs")


if __name__ == "__main__":
    main()
