"""Per-role live numbers of the predictors, from Prometheus (`fraud canary status`, the analysis)."""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fraudcore.errors import UnavailableError
from fraudcore.promql import live_queries


def query(prometheus_url: str, expr: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The samples of an instant query (`[{"metric": {...}, "value": [t, "v"]}, ...]`).

    Raises UnavailableError when Prometheus cannot be queried or refuses the expression.
    """
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:
        raise UnavailableError(f"Prometheus at {prometheus_url} refused a query ({e.code} {e.reason})") from e
    except (urllib.error.URLError, TimeoutError, ValueError) as e:
        raise UnavailableError(f"Prometheus at {prometheus_url} not reachable ({e})") from e
    return body.get("data", {}).get("result", [])


def live_numbers(prometheus_url: str, namespace: str, timeout: float = 3.0) -> dict[str, dict[str, float]]:
    """Per-role request rate, error ratio, p99 latency and fraud rate from Prometheus.

    Raises UnavailableError when Prometheus cannot be queried.
    """
    out: dict[str, dict[str, float]] = {}
    for label, expr in live_queries(namespace).items():
        for sample in query(prometheus_url, expr, timeout):
            role = sample["metric"].get("role", "?")
            out.setdefault(role, {})[label] = float(sample["value"][1])
    return out
