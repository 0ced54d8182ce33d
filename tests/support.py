"""Helpers the tests share: loopback ports, and real server processes started, waited for and stopped."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ok(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{url} did not answer (exit code {process.poll()}):\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.3)


@dataclass
class ServerProcess:
    """A server started by `start_server` on a loopback port, its output in `log`."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    probe: str
    stop_signal: signal.Signals = signal.SIGINT

    def wait(self, probe: str | None = None) -> "ServerProcess":
        """Return once `probe` (a path; default: the readiness probe) answers 200; fail with the
        log's tail if the process exits or time runs out."""
        wait_until_ok(self.url + (probe or self.probe), self.process, self.log)
        return self

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON lines the server logged."""
        # "\n" only: a JSON line may hold characters str.splitlines() also breaks at (U+2028, U+0085)
        lines = self.log.read_text().split("\n")
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self, timeout_s: float = 30) -> None:
        """The stop signal (SIGINT, as Kubernetes' SIGTERM for the predictor: a clean shutdown), then
        a kill if the process is still there after `timeout_s`."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    command: list[str],
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    probe: str,
    stop_signal: signal.Signals = signal.SIGINT,
) -> ServerProcess:
    """Start `command` (with `{port}` filled in by a free port) in the background in `workdir`;
    `probe` is the path that answers 200 once it is ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / f"server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [arg.format(port=port) for arg in command],
            env=None if env is None else dict(env),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(f"http://127.0.0.1:{port}", process, log, probe, stop_signal)


@contextmanager
def running(*servers: ServerProcess) -> Iterator[None]:
    """Stop every server when the block ends, however it ends."""
    try:
        yield
    finally:
        for server in servers:
            server.stop()


@contextmanager
def mlflow_server(workdir: Path, backend_store_uri: str | None = None) -> Iterator[str]:
    """Run `mlflow server` on a free loopback port; yields its URL and stops it afterwards."""
    backend = backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
               "--backend-store-uri", backend,
               "--artifacts-destination", str(workdir / "artifacts")]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no idle job-worker processes
    server = start_server(command, workdir, env, probe="/health", stop_signal=signal.SIGTERM)
    with running(server):
        yield server.wait().url


@contextmanager
def prometheus_endpoint(answer: Callable[[str], list[dict[str, Any]]]) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP endpoint answering Prometheus' `/api/v1/query` with `answer(query)`'s
    samples; yields its URL and the queries it received."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread
    from urllib.parse import parse_qs, urlparse

    queries: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)["query"][0]
            queries.append(query)
            body = {"status": "success", "data": {"resultType": "vector", "result": answer(query)}}
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", queries
    finally:
        server.shutdown()
        server.server_close()
