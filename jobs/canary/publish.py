"""Making every analysis decision visible: a Kubernetes Event on the challenger's InferenceService,
a tag on its MLflow version, and gauges on the Pushgateway (the dashboard's canary row and the
rollback alert read them). Each is best effort: a failure is logged, the decision stands."""

from __future__ import annotations

import logging
import urllib.error
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fraudcore.registry import Registry

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from jobs.canary.progress import Progress

logger = logging.getLogger(__name__)

JOB = "fraud-canary"
"""Pushgateway job of the analysis's metrics (the chart's rollback alert selects on it)."""
ACTIONS = ("start", "advance", "hold", "promote", "rollback", "abort")
TAG = "canary_analysis"
"""MLflow version tag holding the analysis's last decision."""
COMPONENT = "fraud-canary-analysis"


def event(
    api: ApiClient, namespace: str, isvc: dict[str, Any], action: str, message: str, now: datetime
) -> None:
    """A Kubernetes Event on the InferenceService (`kubectl describe` shows it)."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    meta = isvc["metadata"]
    body = {
        "metadata": {"generateName": f"{meta['name']}.canary-", "namespace": namespace},
        "involvedObject": {
            "apiVersion": isvc.get("apiVersion", "serving.kserve.io/v1beta1"),
            "kind": "InferenceService",
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
        "reason": f"Canary{action.capitalize()}",
        "message": message[:1024],
        "type": "Warning" if action in ("rollback", "abort") else "Normal",
        "source": {"component": COMPONENT},
        "firstTimestamp": now.isoformat(),
        "lastTimestamp": now.isoformat(),
        "count": 1,
    }
    try:
        CoreV1Api(api).create_namespaced_event(namespace, body)
    except (ApiException, OSError) as e:
        logger.warning("could not record the Event on %s: %s", meta["name"], getattr(e, "reason", e))


def tag_version(registry: Registry | None, version: int, message: str) -> None:
    """The decision as a tag on the challenger's registry version."""
    if registry is None:
        return
    try:
        registry.client.set_model_version_tag(registry.name, str(version), TAG, message[:5000])
    except Exception as e:  # MLflow raises many types; the decision stands without the tag
        logger.warning("could not tag %s version %s: %s", registry.name, version, e)


def push_metrics(url: str, progress: Progress, step_count: int) -> None:
    """The step, the decision counts and every check's value and limit, to the Pushgateway."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

    gauges = CollectorRegistry()
    running = progress.outcome is None
    Gauge(
        "fraud_canary_step", "Current step of the analysis, from 1 (0: none running).", registry=gauges
    ).set(progress.step + 1 if running else 0)
    Gauge("fraud_canary_steps", "Steps of the plan before promotion.", registry=gauges).set(step_count)
    decisions = Counter(
        "fraud_canary_decisions", "Analysis passes by decision.", ["decision"], registry=gauges
    )
    for action in ACTIONS:
        decisions.labels(action).inc(progress.decisions.get(action, 0))
    value = Gauge(
        "fraud_canary_check_value",
        "The challenger's measured value per check.",
        ["layer", "check"],
        registry=gauges,
    )
    limit = Gauge(
        "fraud_canary_check_limit",
        "What each check holds the value against.",
        ["layer", "check"],
        registry=gauges,
    )
    for check in progress.checks:
        if isinstance(check.get("value"), int | float):
            value.labels(check["layer"], check["name"]).set(check["value"])
        if check.get("threshold") is not None:
            limit.labels(check["layer"], check["name"]).set(check["threshold"])
    try:
        push_to_gateway(url, job=JOB, registry=gauges, timeout=10)
    except (urllib.error.URLError, OSError) as e:
        logger.warning("could not push canary metrics to %s: %s", url, e)
