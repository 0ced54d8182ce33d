"""Retraining: the champion's training data plus recent labelled traffic make a new, gated version.

The labelled rows are logged to MLflow (run `retrain-data`, file `labelled.csv.gz`), so the new
version's data source, `<champion's source> + runs:/<run>/labelled.csv.gz`, can be loaded again later,
e.g. by `fraud models promote` to gate it on the very same holdout. Training, registration, the gate
and the aliases are `training.pipeline.train_and_register`: a passing version becomes `challenger`.

The new version keeps the champion's features, their kinds and its label, so clients need not
change; its categories are learned again from the data, so one that appeared in traffic after the
champion was trained becomes a category of the new version.
"""

import logging
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from fraudcore.bundle import ModelKind
from fraudcore.names import CHAMPION, alias_uri
from fraudcore.registry import Registry
from fraudcore.schema import Schema
from jobs.drift.publish import last_drift_detected
from jobs.drift.window import from_audit_log, from_csv
from training.data import SOURCE_JOIN
from training.pipeline import Registration, train_and_register
from training.train import TrainConfig
from training.tune import Budget

logger = logging.getLogger(__name__)

MAX_LABELLED_ROWS = 1_000_000
"""At most this many of the most recent labelled rows are read from the audit log."""
RUN_JOB = "retrain"
"""The `fraud.job` tag of the run that keeps the labelled rows."""


@dataclass(frozen=True)
class Retrained:
    """A new version (`registration`), or the reason nothing was trained (`skipped`)."""

    registration: Registration | None = None
    skipped: str | None = None
    labelled_rows: int = 0


def retrain(
    registry: Registry,
    data: Path | None = None,
    only_on_drift: bool = False,
    kind: ModelKind | None = None,
    budget: Budget | None = None,
) -> Retrained:
    """Train on the champion's data plus labelled rows (from the CSV `data`, else the audit log), both
    read in the champion's schema, with the champion's family and hyper-parameters (or family `kind`
    with its configured ones); with a `budget`, the hyper-parameters are searched for first.

    Raises GateRejectedError when the new version fails the gate (it stays registered, rejected).
    """
    settings = registry.settings
    if only_on_drift:
        verdict = last_drift_detected(registry)
        if not verdict:
            reason = (
                "no drift check has run yet" if verdict is None else "the last drift check found no drift"
            )
            return Retrained(skipped=reason)
    champion = registry.load(alias_uri(registry.name, CHAMPION)).bundle
    schema = champion.card.schema
    if data is not None:
        labelled = from_csv(data, schema)
    else:
        since = timedelta(days=settings.retrain_window_days)
        labelled = from_audit_log(settings, schema, MAX_LABELLED_ROWS, since=since, labelled_only=True)
    frame = labelled.labelled_frame()
    if frame.empty:
        return Retrained(skipped=f"no labelled transactions in {labelled.source}")

    with registry.job_run(RUN_JOB, run_name="retrain-data") as run, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labelled.csv.gz"
        frame.to_csv(path, index=False)
        run.log_files(path)
        source = f"{champion.card.data_source}{SOURCE_JOIN}runs:/{run.run_id}/{path.name}"
        run.log_param("data_source", source)
        run.log_metrics({"labelled_rows": len(frame), "labelled_fraud_rows": int(frame[schema.label].sum())})
        logger.info("retraining on %s (%d labelled rows from %s)", source, len(frame), labelled.source)
        config = TrainConfig.from_card(settings, champion.card.params, kind)
        registration = train_and_register(registry, config, source, schema.label, _relearned(schema), budget)
        run.set_tag("version", registration.version)
    return Retrained(registration, labelled_rows=len(frame))


def _relearned(schema: Schema) -> Schema:
    """The champion's schema with its categories left to be learned from the new data."""
    return replace(schema, features=tuple(replace(f, categories=()) for f in schema.features))
