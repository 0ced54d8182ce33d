"""Every PromQL expression the project shows or alerts on, written once.

Each builder takes the label selector (`namespace="fraud"`), the grouping labels and the range, so
one expression serves three places: the chart's recording rules (`rules/recording.yaml`) and the
Grafana dashboard's targets (`dashboards/fraud-detection.json`), both written by `make monitoring`
(`scripts/monitoring.py`; tests/fraudcore/test_promql.py fails when they are stale), and the live
numbers of `fraud canary status` (`live_queries`).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Builder = Callable[[str, str, str], str]
"""(selector, by, range) → expression."""


def requests_rate(sel: str, by: str, window: str) -> str:
    """Scored requests per second (the predictor's latency histogram counts every scored request,
    the mirrored ones under the role `shadow`)."""
    return f"sum by ({by}) (rate(fraud_request_seconds_count{{{sel}}}[{window}]))"


def rejected_rate(sel: str, by: str, window: str) -> str:
    """Requests refused with a 4xx/5xx per second."""
    return f"sum by ({by}) (rate(fraud_rejected_requests_total{{{sel}}}[{window}]))"


def error_ratio_of(rejected: str, requests: str) -> str:
    """Rejected share of all requests, from the two rates (or their recorded series)."""
    return f"{rejected} / ({rejected} + {requests})"


def error_ratio(sel: str, by: str, window: str) -> str:
    return error_ratio_of(rejected_rate(sel, by, window), requests_rate(sel, by, window))


def _histogram_quantile(histogram: str, quantile: float) -> Builder:
    def build(sel: str, by: str, window: str) -> str:
        buckets = f"rate({histogram}_bucket{{{sel}}}[{window}])"
        return f"histogram_quantile({quantile}, sum by ({by}, le) ({buckets}))"

    return build


def latency_quantile(quantile: float) -> Builder:
    """A quantile of the scoring latency (seconds), per request."""
    return _histogram_quantile("fraud_request_seconds", quantile)


def batch_quantile(quantile: float) -> Builder:
    """A quantile of the rows per scoring call."""
    return _histogram_quantile("fraud_batch_size", quantile)


def predictions_rate(sel: str, by: str, window: str) -> str:
    """Transactions scored per second."""
    return f"sum by ({by}) (rate(fraud_predictions_total{{{sel}}}[{window}]))"


def fraud_rate(sel: str, by: str, window: str) -> str:
    """Share of scored transactions flagged as fraud."""
    flagged = f'sum by ({by}) (rate(fraud_predictions_total{{{sel}, decision="fraud"}}[{window}]))'
    return f"{flagged} / {predictions_rate(sel, by, window)}"


def score_histogram(sel: str, by: str, window: str) -> str:
    """Scores per bucket over the range (a heatmap of the score distribution)."""
    return f"sum by ({by}) (increase(fraud_score_bucket{{{sel}}}[{window}]))"


def models_serving(sel: str, by: str, window: str) -> str:
    """One series per role and version being served (an instant vector: `window` is unused)."""
    return f"max by ({by}) (fraud_model_info{{{sel}}})"


DRIFT_DETECTED = "max(fraud_drift_detected)"
DRIFT_SHARE = "max(fraud_drift_share_of_drifted_features)"
DRIFT_LAST_RUN_MS = "max(fraud_drift_last_run_timestamp_seconds) * 1000"
DRIFT_LOWEST_P_VALUES = "bottomk(10, min by (feature) (fraud_drift_p_value))"
CANARY_STEP = "max(fraud_canary_step)"
CANARY_DECISIONS = "sum by (decision) (increase(fraud_canary_decisions_total[1h]))"
CANARY_CHECK_VALUES = "max by (layer, check) (fraud_canary_check_value)"
CANARY_CHECK_LIMITS = "max by (layer, check) (fraud_canary_check_limit)"


@dataclass(frozen=True)
class Recording:
    """A recording rule of the chart's PrometheusRule."""

    record: str
    expr: str


RULE_BY = "namespace, role"


def recording_rules(sel: str) -> list[Recording]:
    """The chart's recording rules for a namespace selector."""
    requests, rejected = "fraud:requests:rate5m", "fraud:rejected_requests:rate5m"
    return [
        Recording(requests, requests_rate(sel, RULE_BY, "5m")),
        Recording(rejected, rejected_rate(sel, RULE_BY, "5m")),
        Recording("fraud:request_error_ratio:rate5m", error_ratio_of(rejected, requests)),
        Recording("fraud:predict_latency_seconds:p99_5m", latency_quantile(0.99)(sel, RULE_BY, "5m")),
        Recording("fraud:fraud_rate:ratio_rate1h", fraud_rate(sel, RULE_BY, "1h")),
    ]


def live_queries(namespace: str) -> dict[str, str]:
    """`fraud canary status`: per-role numbers for one namespace."""
    sel = f"namespace={json.dumps(namespace)}"
    return {
        "requests/s": requests_rate(sel, "role", "5m"),
        "error ratio": error_ratio(sel, "role", "5m"),
        "p99 latency s": latency_quantile(0.99)(sel, "role", "5m"),
        "fraud rate": fraud_rate(sel, "role", "1h"),
    }


DASHBOARD_SELECTOR, DASHBOARD_RANGE = 'namespace="$namespace"', "$__rate_interval"


def dashboard_targets() -> dict[tuple[str, str], str]:
    """The dashboard's target expressions by (panel title, refId)."""
    sel, window = DASHBOARD_SELECTOR, DASHBOARD_RANGE
    by_role = {
        ("Requests per second by role", "A"): requests_rate,
        ("Error ratio by role", "A"): error_ratio,
        ("Predict latency percentiles by role", "A"): latency_quantile(0.5),
        ("Predict latency percentiles by role", "B"): latency_quantile(0.9),
        ("Predict latency percentiles by role", "C"): latency_quantile(0.99),
        ("Batch size (p50, p99)", "A"): batch_quantile(0.5),
        ("Batch size (p50, p99)", "B"): batch_quantile(0.99),
        ("Fraud rate by role", "A"): fraud_rate,
    }
    targets = {key: build(sel, "role", window) for key, build in by_role.items()}
    return targets | {
        ("Transactions scored per second by role and version", "A"): predictions_rate(
            sel, "role, model_version", window
        ),
        ("Rejected requests by reason", "A"): rejected_rate(sel, "role, reason", window),
        ("Score distribution", "A"): score_histogram(f'{sel}, role=~"$role"', "le", window),
        ("Models serving", "A"): models_serving(sel, "role, model_version", window),
        ("Drift detected (last run)", "A"): DRIFT_DETECTED,
        ("Share of drifted features", "A"): DRIFT_SHARE,
        ("Last drift run", "A"): DRIFT_LAST_RUN_MS,
        ("Drift p-value per feature (lowest 10)", "A"): DRIFT_LOWEST_P_VALUES,
        ("Canary step", "A"): CANARY_STEP,
        ("Canary decisions per hour", "A"): CANARY_DECISIONS,
        ("Canary checks: challenger's value and limit", "A"): CANARY_CHECK_VALUES,
        ("Canary checks: challenger's value and limit", "B"): CANARY_CHECK_LIMITS,
    }


SELECTOR_PLACEHOLDER = "__SELECTOR__"
"""Where the chart's template puts the release's namespace selector in `rules/recording.yaml`."""


def recording_rules_yaml() -> str:
    """`charts/fraud-detection/rules/recording.yaml`, included by the PrometheusRule template."""
    lines = ["# Generated by `make monitoring` from fraudcore/promql.py: do not edit."]
    for rule in recording_rules(SELECTOR_PLACEHOLDER):
        lines += [f"- record: {rule.record}", f"  expr: {rule.expr}"]
    return "\n".join(lines) + "\n"


def with_dashboard_targets(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard with every target's expression taken from `dashboard_targets` (a target the
    table does not know is a KeyError: new panels get their expression here first)."""
    targets = dashboard_targets()

    def fill(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                target["expr"] = targets[panel["title"], target["refId"]]
            fill(panel.get("panels", []))

    fill(dashboard.get("panels", []))
    return dashboard
