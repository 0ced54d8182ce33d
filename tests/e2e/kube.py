"""Thin helpers over kubectl and helm for the end-to-end tier (a kind cluster made by scripts/kind)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cluster:
    """Where the cluster and its tools are, as scripts/kind/e2e.sh exports them."""

    kubeconfig: Path
    bin_dir: Path
    helm: Path
    node: str
    gateway: str
    """http://127.0.0.1:<port>: the Envoy data plane's node port, mapped to loopback by kind."""
    prometheus: str
    """http://127.0.0.1:<port>: Prometheus' node port, mapped to loopback by kind."""

    @classmethod
    def from_env(cls) -> Cluster | None:
        kubeconfig = os.environ.get("FRAUD_E2E_KUBECONFIG")
        if not kubeconfig or not Path(kubeconfig).is_file():
            return None
        return cls(
            kubeconfig=Path(kubeconfig),
            bin_dir=Path(os.environ["FRAUD_E2E_BIN"]),
            helm=Path(os.environ["FRAUD_E2E_HELM"]),
            node=os.environ["FRAUD_E2E_NODE"],
            gateway=os.environ["FRAUD_E2E_GATEWAY_URL"],
            prometheus=os.environ["FRAUD_E2E_PROMETHEUS_URL"],
        )

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 300) -> str:
        proc = subprocess.run(
            args, input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:4])} … failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 300) -> str:
        return self.run(str(self.bin_dir / "kubectl"), *args, stdin=stdin, check=check, timeout=timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm_(self, *args: str, timeout: float = 600) -> str:
        return self.run(str(self.helm), *args, timeout=timeout)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 300, every: float = 2.0) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` and the last error."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except AssertionError:
            raise  # a definite failure (e.g. a Job that failed): no point in waiting
        except Exception as e:  # the probe's own error is only reported if time runs out
            last = e
        time.sleep(every)
    raise TimeoutError(
        f"{what} not reached within {timeout:.0f}s" + (f" (last error: {last})" if last else "")
    )
