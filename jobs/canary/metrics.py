"""Per-role live numbers of the predictors, from Prometheus (`fraud canary status`)."""

import json
import urllib.error
import urllib.parse
import urllib.request

from fraudcore.errors import UnavailableError

LIVE_QUERIES = {
    "requests/s": "sum by (role) (rate(request_predict_seconds_count{{namespace={ns}}}[5m]))",
    "error ratio": (
        "sum by (role) (rate(fraud_rejected_requests_total{{namespace={ns}}}[5m])) / "
        "(sum by (role) (rate(fraud_rejected_requests_total{{namespace={ns}}}[5m])) + "
        "sum by (role) (rate(request_predict_seconds_count{{namespace={ns}}}[5m])))"
    ),
    "p99 latency s": (
        "histogram_quantile(0.99, sum by (role, le) "
        "(rate(request_predict_seconds_bucket{{namespace={ns}}}[5m])))"
    ),
    "fraud rate": (
        'sum by (role) (rate(fraud_predictions_total{{namespace={ns}, decision="fraud"}}[1h])) / '
        "sum by (role) (rate(fraud_predictions_total{{namespace={ns}}}[1h]))"
    ),
}


def live_numbers(prometheus_url: str, namespace: str, timeout: float = 3.0) -> dict[str, dict[str, float]]:
    """Per-role request rate, error ratio, p99 latency and fraud rate from Prometheus.

    Raises UnavailableError when Prometheus cannot be queried.
    """
    out: dict[str, dict[str, float]] = {}
    for label, template in LIVE_QUERIES.items():
        query = template.format(ns=json.dumps(namespace))
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
