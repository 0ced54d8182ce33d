"""The drift job: a window of scored transactions (`window`) tested against the champion's training
sample (`detection`, its tests in `statistics`), written as JSON and HTML (`report`) and published
(`publish`)."""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fraudcore.registry import LoadedModel, Registry
from jobs.drift.detection import Detector, DriftResult, detect_drift
from jobs.drift.publish import log_run, push_metrics
from jobs.drift.report import render, write
from jobs.drift.statistics import Backend, Correction
from jobs.drift.window import Window


@dataclass(frozen=True)
class DriftRun:
    """A finished check: its result, the files written and the MLflow run that keeps them."""

    result: DriftResult
    files: tuple[Path, Path]
    run_id: str


def run_drift_check(
    registry: Registry,
    model: LoadedModel,
    window: Window,
    *,
    detector: Detector = "ks",
    correction: Correction | None = None,
    backend: Backend | None = None,
    out: Path | None = None,
) -> DriftRun:
    """Test, write `drift.json` and `drift.html` (default: under `<home>/reports/`), push the gauges
    when a Pushgateway is configured and log an MLflow run."""
    settings = registry.settings
    result, reference, tested = detect_drift(
        model,
        window,
        detector=detector,
        correction=correction or settings.drift_correction,
        p_value=settings.drift_p_value,
        min_rows=settings.drift_min_rows,
        backend=backend or settings.drift_backend,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory = out or settings.home / "reports" / f"drift-{stamp}"
    files = write(result, render(result, reference, tested, model.bundle.card.schema), directory)
    if settings.pushgateway_url:
        push_metrics(result, settings.pushgateway_url)
    return DriftRun(result, files, log_run(registry, result, files))
