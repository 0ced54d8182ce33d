"""A real MLflow tracking server process for tests."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.net import free_port, wait_until_ok


@contextmanager
def mlflow_server(workdir: Path, backend_store_uri: str | None = None) -> Iterator[str]:
    """Run `mlflow server` on a free loopback port; yields its URL and stops it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    backend = backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    log = (workdir / "mlflow-server.log").open("w")
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend, "--artifacts-destination", str(workdir / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no idle job-worker processes
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{url}/health", process, workdir / "mlflow-server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
