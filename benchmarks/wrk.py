"""Closed-loop load with wrk (C, epoll): a Python client tops out below the bare HTTP stack's rate.

`closed_loop(url, body, headers, concurrency, seconds)` runs wrk on one thread with a generated Lua
script (the body read from its file, a JSON summary printed when done) and returns the same fields
as benchmarks/loadgen.py. wrk is Debian's package (`make bench` installs it).
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_SCRIPT = """
local file = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
%(headers)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "errors": %%d, "status_errors": %%d, "seconds": %%.3f, "p50_ms": %%.3f, ' ..
    '"p90_ms": %%.3f, "p99_ms": %%.3f, "max_ms": %%.3f}\\n',
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for these values


def closed_loop(
    url: str, body: Path, headers: tuple[str, ...], concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` connections sending back to back for `seconds`; wrk's summary as a dict."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: install Debian's wrk package (make bench does)")
    extra = []
    for header in headers:
        name, _, value = header.partition(":")
        extra.append(f"wrk.headers[{_lua_string(name.strip())}] = {_lua_string(value.strip())}")
    script = _SCRIPT % {"body": _lua_string(str(body)), "headers": "\n".join(extra)}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        command = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", lua.name, url]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["req_per_s"] = round((result["requests"] - result["errors"]) / result["seconds"], 1)
    result["mode"] = f"wrk c={concurrency}"
    return result
