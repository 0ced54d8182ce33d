"""The PromQL table is the one source: the chart's generated files are current, and `fraud canary
status` asks the same questions as the dashboard."""

import json

from fraudcore import promql
from scripts import monitoring


def test_generated_recording_rules_are_current() -> None:
    assert monitoring.RULES.read_text() == promql.recording_rules_yaml(), "stale: run make monitoring"


def test_generated_dashboard_expressions_are_current() -> None:
    assert monitoring.DASHBOARD.read_text() == monitoring.dashboard_json(), "stale: run make monitoring"


def test_every_dashboard_target_comes_from_the_table() -> None:
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    found = {
        (panel["title"], target["refId"]): target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert found == promql.dashboard_targets()


def test_canary_status_and_dashboard_share_expressions() -> None:
    live = promql.live_queries("fraud")
    dashboard = promql.dashboard_targets()
    as_live = {
        "requests/s": ("Requests per second by role", "A"),
        "error ratio": ("Error ratio by role", "A"),
        "p99 latency s": ("Predict latency percentiles by role", "C"),
        "fraud rate": ("Fraud rate by role", "A"),
    }
    for label, key in as_live.items():
        shown = dashboard[key].replace(promql.DASHBOARD_SELECTOR, 'namespace="fraud"')
        windows = ("[5m]", "[1h]")
        assert any(shown.replace(f"[{promql.DASHBOARD_RANGE}]", w) == live[label] for w in windows), label
