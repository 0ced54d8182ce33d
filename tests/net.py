"""Loopback helpers for tests that start real server processes."""

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


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
