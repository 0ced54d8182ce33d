"""The analysis's metrics as the Pushgateway receives them: the step, every decision count (zeros
included, so an alert's `increase()` sees the first rollback) and each check's value and limit."""

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs.canary.progress import Progress
from jobs.canary.publish import ACTIONS, JOB, push_metrics
from tests.support import free_port


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A loopback endpoint taking pushes as a Pushgateway does (PUT /metrics/job/<job>)."""
    pushes: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            pushes.append((self.path, self.rfile.read(int(self.headers["content-length"])).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", pushes
    finally:
        server.shutdown()
        server.server_close()


def test_push_carries_step_decisions_and_checks(gateway: tuple[str, list[tuple[str, str]]]) -> None:
    url, pushes = gateway
    progress = Progress.begin(3, 4, datetime.now(UTC)).decided("advance", "ok", datetime.now(UTC))
    checks = (
        {"layer": "service", "name": "error ratio", "value": 0.001, "threshold": 0.003},
        {"layer": "labels", "name": "recall", "value": None, "threshold": None},
    )
    push_metrics(url, replace(progress, checks=checks), step_count=5)
    [(path, body)] = pushes
    assert path == f"/metrics/job/{JOB}"
    lines = set(body.splitlines())
    assert "fraud_canary_step 2.0" in lines and "fraud_canary_steps 5.0" in lines
    assert 'fraud_canary_decisions_total{decision="advance"} 1.0' in lines
    assert all(f'fraud_canary_decisions_total{{decision="{a}"}}' in body for a in ACTIONS)
    assert 'fraud_canary_check_value{check="error ratio",layer="service"} 0.001' in lines
    assert 'fraud_canary_check_limit{check="error ratio",layer="service"} 0.003' in lines
    assert 'check="recall"' not in body


def test_an_unreachable_gateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    push_metrics(f"http://127.0.0.1:{free_port()}", Progress.begin(3, 4, datetime.now(UTC)), step_count=5)
    assert "could not push canary metrics" in caplog.text
