"""Per-role live numbers of the predictors, from Prometheus (`fraud canary status`)."""

import json
import urllib.error
import urllib.parse
import urllib.request

from fraudcore.errors import UnavailableError
from fraudcore.promql import live_queries


def live_numbers(prometheus_url: str, namespace: str, timeout: float = 3.0) -> dict[str, dict[str, float]]:
    """Per-role request rate, error ratio, p99 latency and fraud rate from Prometheus.

    Raises UnavailableError when Prometheus cannot be queried.
    """
    out: dict[str, dict[str, float]] = {}
    for label, query in live_queries(namespace).items():
        url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = json.load(resp)
        except (urllib.error.URLError, TimeoutError, ValueError) as e:
            raise UnavailableError(f"Prometheus at {prometheus_url} not reachable ({e})") from e
        for sample in body.get("data", {}).get("result", []):
            role = sample["metric"].get("role", "?")
            out.setdefault(role, {})[label] = float(sample["value"][1])
    return out
