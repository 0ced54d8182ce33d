"""Publishing a drift check: JSON result, HTML report, Pushgateway metrics and an MLflow run.

The report is one self-contained HTML page with a histogram per drifted column (inline SVG).
"""

import html
import io
import json
import logging
import urllib.error
from pathlib import Path

import numpy as np

from fraudcore.modelstore import connect
from fraudcore.schema import FEATURES
from fraudcore.settings import Settings
from jobs.drift import SCORE, DriftResult, Test
from training.registry import ensure_experiment

logger = logging.getLogger(__name__)

JOB = "fraud-drift"
"""Pushgateway job name of the drift metrics (the chart's alert rules select on it)."""
RUN_TAG = "fraud.job"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5rem; } .drift { color: #b3261e; } .quiet { color: #1e7b34; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { padding: .25rem .75rem; text-align: right; }
th { border-bottom: 1px solid #999; } td:first-child, th:first-child { text-align: left; }
tr.drifted td { color: #b3261e; font-weight: 600; } figure { display: inline-block; margin: .5rem; }
figcaption { font-size: .85rem; color: #555; }
"""


def render(result: DriftResult, reference: np.ndarray, window: np.ndarray) -> str:
    """The report page; `reference` and `window` are the tested matrices (30 features + score)."""
    names = [*FEATURES, SCORE]
    verdict = (
        f'<span class="drift">drift detected</span> in {len(result.drifted_features)} of '
        f"{len(result.features)} features"
        if result.detected
        else '<span class="quiet">no drift</span>'
    )
    figures = "".join(
        _figure(name, reference[:, i], window[:, i], _test(result, name))
        for i, name in enumerate(names)
        if _test(result, name).drifted
    )
    rows = sorted(names, key=lambda name: _test(result, name).p_value)
    table = "".join(_row(name, _test(result, name)) for name in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {_e(result.ran_at)}</title>
<style>{_STYLE}</style></head><body>
<h1>Drift report: {verdict}</h1>
<p>{_e(result.model)} version {_e(result.model_version)} · window: {_e(result.window)},
{result.window_rows:,} rows · reference: {result.reference_rows:,} training rows · {_e(result.ran_at)}</p>
<p>Detector <b>{result.detector}</b>; Kolmogorov-Smirnov per column with {result.correction} correction
at p &lt; {result.p_value:g} for the family (per-test threshold {result.threshold:.3g}).
{_multivariate(result.multivariate)}</p>
{_performance(result)}
{f"<h2>Drifted columns</h2>{figures}" if figures else ""}
<h2>All tests</h2>
<table><tr><th>column</th><th>p-value</th><th>KS distance</th><th>drift</th></tr>{table}</table>
</body></html>
"""


def _test(result: DriftResult, name: str) -> Test:
    return result.score if name == SCORE else result.features[name]


def _e(text: str) -> str:
    return html.escape(text)


def _row(name: str, test: Test) -> str:
    css = ' class="drifted"' if test.drifted else ""
    mark = "yes" if test.drifted else ""
    cells = f"<td>{_e(name)}</td><td>{test.p_value:.3g}</td><td>{test.distance:.3f}</td><td>{mark}</td>"
    return f"<tr{css}>{cells}</tr>"


def _multivariate(test: Test | None) -> str:
    if test is None:
        return ""
    verdict = "drift" if test.drifted else "no drift"
    return f"Domain classifier: p = {test.p_value:.3g}, {verdict}."


def _performance(result: DriftResult) -> str:
    perf = result.performance
    if perf is None:
        return "<p>No labelled rows in the window: performance unknown.</p>"

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return f"""<h2>Champion on the labelled rows</h2>
<table><tr><th></th><th>window</th><th>training holdout</th></tr>
<tr><td>PR-AUC</td><td>{cell(perf.pr_auc)}</td><td>{cell(perf.holdout_pr_auc)}</td></tr>
<tr><td>recall at threshold</td><td>{cell(perf.recall)}</td><td>{cell(perf.holdout_recall)}</td></tr>
<tr><td>precision at threshold</td><td>{cell(perf.precision)}</td><td></td></tr>
<tr><td>labelled rows (fraud)</td><td>{perf.labelled_rows:,} ({perf.fraud_rows:,})</td><td></td></tr>
</table>"""


def _figure(name: str, reference: np.ndarray, window: np.ndarray, test: Test) -> str:
    """Reference and window histograms on shared bins, as inline SVG."""
    from matplotlib.figure import Figure  # no pyplot: no backend or global state involved

    both = np.concatenate([reference, window])
    low, high = np.percentile(both, [0.5, 99.5])
    bins = np.linspace(low, high, 40) if high > low else 10
    figure = Figure(figsize=(4.2, 2.6))
    axes = figure.subplots()
    axes.hist(reference, bins=bins, density=True, alpha=0.55, label="reference", color="#4a78b5")
    axes.hist(window, bins=bins, density=True, alpha=0.55, label="window", color="#d1603d")
    axes.set_title(name, fontsize=10)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    caption = f"{_e(name)}: KS distance {test.distance:.3f}, p = {test.p_value:.2g}"
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def write(result: DriftResult, page: str, directory: Path) -> tuple[Path, Path]:
    """Write `drift.json` and `drift.html` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    result_path, report_path = directory / "drift.json", directory / "drift.html"
    result_path.write_text(json.dumps(result.to_dict(), indent=2))
    report_path.write_text(page)
    return result_path, report_path


def push_metrics(result: DriftResult, url: str) -> None:
    """Push the check's gauges to a Pushgateway; a failed push is logged, not raised."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    Gauge("fraud_drift_detected", "1 when the last drift check found drift.", registry=registry).set(
        int(result.detected)
    )
    Gauge("fraud_drift_share_of_drifted_features", "Share of features that drifted.", registry=registry).set(
        result.share_drifted
    )
    per_feature = Gauge(
        "fraud_drift_p_value", "KS p-value per feature in the last check.", ["feature"], registry=registry
    )
    for name, test in result.features.items():
        per_feature.labels(feature=name).set(test.p_value)
    Gauge(
        "fraud_drift_score_p_value",
        "KS p-value of the champion's scores (prediction drift).",
        registry=registry,
    ).set(result.score.p_value)
    Gauge(
        "fraud_drift_last_run_timestamp_seconds", "When the last drift check finished.", registry=registry
    ).set_to_current_time()
    try:
        push_to_gateway(url, job=JOB, registry=registry, timeout=10)
    except (urllib.error.URLError, OSError) as e:
        logger.warning("could not push drift metrics to %s: %s", url, e)


def log_run(settings: Settings, result: DriftResult, files: tuple[Path, ...]) -> str:
    """Record the check as an MLflow run with its numbers and files; returns the run id."""
    client = connect(settings)
    run = client.create_run(
        ensure_experiment(client, settings),
        run_name="drift",
        tags={
            RUN_TAG: "drift",
            "drift_detected": str(result.detected).lower(),
            "model_version": result.model_version,
            "detector": result.detector,
        },
    )
    run_id = run.info.run_id
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
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def last_drift_detected(settings: Settings) -> bool | None:
    """The verdict of the most recent drift check logged to MLflow; None when there is none."""
    client = connect(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{RUN_TAG}` = 'drift'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].data.tags.get("drift_detected") == "true" if runs else None
