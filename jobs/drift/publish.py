"""Publishing a drift check: gauges to the Pushgateway and an MLflow run with its numbers and files;
and the lookup of the last verdict that retraining reads."""

import logging
import urllib.error
from pathlib import Path

from fraudcore.registry import Registry
from jobs.drift.detection import DriftResult

logger = logging.getLogger(__name__)

JOB = "fraud-drift"
"""Pushgateway job name of the drift metrics (the chart's alert rules select on it)."""
RUN_JOB = "drift"
"""The `fraud.job` tag of the drift check's MLflow runs."""


def push_metrics(result: DriftResult, url: str) -> None:
    """Push the check's gauges to a Pushgateway; a failed push is logged, not raised."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    gauges = CollectorRegistry()
    Gauge("fraud_drift_detected", "1 when the last drift check found drift.", registry=gauges).set(
        int(result.detected)
    )
    Gauge("fraud_drift_share_of_drifted_features", "Share of features that drifted.", registry=gauges).set(
        result.share_drifted
    )
    per_feature = Gauge(
        "fraud_drift_p_value",
        "Two-sample test p-value per feature in the last check (KS or chi-square).",
        ["feature"],
        registry=gauges,
    )
    for name, test in result.features.items():
        per_feature.labels(feature=name).set(test.p_value)
    Gauge(
        "fraud_drift_score_p_value",
        "KS p-value of the champion's scores (prediction drift).",
        registry=gauges,
    ).set(result.score.p_value)
    Gauge(
        "fraud_drift_last_run_timestamp_seconds", "When the last drift check finished.", registry=gauges
    ).set_to_current_time()
    try:
        push_to_gateway(url, job=JOB, registry=gauges, timeout=10)
    except (urllib.error.URLError, OSError) as e:
        logger.warning("could not push drift metrics to %s: %s", url, e)


def log_run(registry: Registry, result: DriftResult, files: tuple[Path, ...]) -> str:
    """Record the check as an MLflow run with its numbers and files; returns the run id."""
    tags = {
        "drift_detected": str(result.detected).lower(),
        "model_version": result.model_version,
        "detector": result.detector,
    }
    metrics = {
        "drift_detected": float(result.detected),
        "share_of_drifted_features": result.share_drifted,
        "score_p_value": result.score.p_value,
        "window_rows": float(result.window_rows),
        **{f"p_value_{name}": test.p_value for name, test in result.features.items()},
    }
    if result.performance is not None:
        metrics |= {
            f"window_{k}": float(v)
            for k, v in (("pr_auc", result.performance.pr_auc), ("recall", result.performance.recall))
            if v is not None
        }
    with registry.job_run(RUN_JOB, run_name="drift", tags=tags) as run:
        run.log_metrics(metrics)
        run.log_files(*files)
    return run.run_id


def last_drift_detected(registry: Registry) -> bool | None:
    """The verdict of the most recent drift check logged to MLflow; None when there is none."""
    tags = registry.latest_job_tags(RUN_JOB)
    return None if tags is None else tags.get("drift_detected") == "true"
