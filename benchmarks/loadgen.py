"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, one request per connection at a time).

Two modes: a fixed number of clients sending back to back (`closed`), and a fixed arrival rate
(`rate`) whose latencies count from each request's scheduled time, so a stalled server cannot hide
its queueing delay (no coordinated omission). Run it as its own process:

    python benchmarks/loadgen.py --url http://127.0.0.1:8080/v2/models/m/infer --body req.json \
        --concurrency 16 --duration 10
"""

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Result:
    """What one load run measured."""

    mode: str
    requests: int
    errors: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    first_error: str | None = None
    warmup_requests: int = 0


class Connection:
    """One keep-alive connection that sends a prepared request and reads one response."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def build_request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + body


class Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: str | None = None

    def add(self, status: int, body: bytes, latency: float) -> None:
        if status == 200:
            self.latencies.append(latency)
            return
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"HTTP {status}: {body[:200]!r}"

    def fail(self, error: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = repr(error)

    def result(self, mode: str, seconds: float) -> Result:
        lat = sorted(self.latencies) or [0.0]
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
        return Result(
            mode=mode,
            requests=len(self.latencies),
            errors=self.errors,
            seconds=round(seconds, 3),
            req_per_s=round(len(self.latencies) / seconds, 1),
            p50_ms=round(q[49] * 1000, 3),
            p90_ms=round(q[89] * 1000, 3),
            p99_ms=round(q[98] * 1000, 3),
            max_ms=round(lat[-1] * 1000, 3),
            first_error=self.first_error,
        )


async def closed_loop(host: str, port: int, request: bytes, concurrency: int, duration: float) -> Result:
    """`concurrency` clients, each sending its next request as soon as the last one is answered."""
    recorder = Recorder()
    deadline = time.perf_counter() + duration

    async def client() -> None:
        connection = Connection(host, port, request)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    status, body = await connection.send()
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    recorder.fail(e)
                    connection.close()
                    connection = Connection(host, port, request)
                    continue
                recorder.add(status, body, time.perf_counter() - start)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return recorder.result(f"closed c={concurrency}", time.perf_counter() - started)


async def fixed_rate(host: str, port: int, request: bytes, rate: float, duration: float) -> Result:
    """Requests start at `rate` per second whatever the server does; latency counts from the schedule."""
    recorder = Recorder()
    idle: list[Connection] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        connection = idle.pop() if idle else Connection(host, port, request)
        try:
            status, body = await connection.send()
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            recorder.fail(e)
            connection.close()
            return
        recorder.add(status, body, time.perf_counter() - scheduled)
        idle.append(connection)

    started = time.perf_counter()
    total = int(rate * duration)
    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return recorder.result(f"rate {rate:g}/s", time.perf_counter() - started)


async def run(args: argparse.Namespace) -> Result:
    headers = dict(h.split(":", 1) for h in args.header)
    host, port, request = build_request(args.url, Path(args.body).read_bytes(), headers)
    warmup = 0
    if args.warmup > 0:
        warmup = (await closed_loop(host, port, request, args.concurrency, args.warmup)).requests
    if args.rate:
        result = await fixed_rate(host, port, request, args.rate, args.duration)
    else:
        result = await closed_loop(host, port, request, args.concurrency, args.duration)
    result.warmup_requests = warmup
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="file with the request body")
    parser.add_argument("--header", action="append", default=[], help="extra header 'name: value'")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="fixed arrival rate (requests/s)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asdict(asyncio.run(run(args)))))


if __name__ == "__main__":
    main()
