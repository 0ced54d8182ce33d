"""The MLflow side: log a trained model, register it, move aliases, record gate verdicts."""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import fraudcore
from fraudcore.bundle import save_bundle
from fraudcore.errors import NotFoundError
from fraudcore.pyfunc import BUNDLE_ARTIFACT, FraudModel
from fraudcore.schema import FEATURES
from fraudcore.settings import Settings
from training.gate import GateResult
from training.train import TrainedModel

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
STATUS_TAG, REASON_TAG = "validation_status", "validation_reason"
CARD_TAGS = ("kind", "roc_auc", "pr_auc", "threshold", "data_fingerprint")


def ensure_experiment(client: MlflowClient, settings: Settings) -> str:
    """The experiment id; the embedded store keeps its artifacts under the local home."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = None if settings.tracking_uri else settings.artifact_root.as_uri()
    return client.create_experiment(settings.experiment, artifact_location=location)


def log_and_register(
    client: MlflowClient, settings: Settings, model: TrainedModel, run_name: str
) -> ModelVersion:
    """Log params, metrics and the model bundle as an MLflow run, then register a new version."""
    experiment_id = ensure_experiment(client, settings)
    card = model.card
    example = pd.DataFrame(model.reference[:3], columns=list(FEATURES))
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({**card.params, "data_source": card.data_source})
        mlflow.log_metrics({f"holdout_{k}": v for k, v in card.metrics.items()})
        mlflow.log_metric("threshold", card.threshold)
        mlflow.set_tags({"data_fingerprint": card.data_fingerprint, "model_kind": card.kind})
        bundle_dir = Path(tmp) / BUNDLE_ARTIFACT
        save_bundle(bundle_dir, model.scorer, card, model.reference)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FraudModel(),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            code_paths=[str(Path(fraudcore.__file__).parent)],
            signature=infer_signature(example, model.scorer.predict_proba(example.to_numpy())),
            input_example=example,
            pip_requirements=[
                f"xgboost=={_version('xgboost')}",
                "numpy<2",
                "pandas<3",
                f"mlflow-skinny=={mlflow.__version__}",
            ],
            metadata={"threshold": card.threshold, "kind": card.kind},
        )
    version = mlflow.register_model(
        info.model_uri, settings.registered_model, tags={"run_id": run.info.run_id}
    )
    tags = {
        "kind": card.kind,
        "threshold": f"{card.threshold:.6g}",
        "roc_auc": f"{card.metrics['roc_auc']:.4f}",
        "pr_auc": f"{card.metrics['pr_auc']:.4f}",
        "data_fingerprint": card.data_fingerprint,
    }
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version.version, key, value)
    logger.info("registered %s version %s", settings.registered_model, version.version)
    return version


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias is unset."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def require_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as e:
        raise NotFoundError(f"{name} has no version {version}") from e


def record_verdict(client: MlflowClient, name: str, version: str, result: GateResult) -> None:
    """Keep the gate's verdict on the version, whatever it was."""
    client.set_model_version_tag(name, version, STATUS_TAG, "passed" if result.passed else "rejected")
    client.set_model_version_tag(name, version, REASON_TAG, result.summary())


def mark_rejected(client: MlflowClient, name: str, version: str, reason: str) -> None:
    """Reject a version (e.g. after a canary rollback) and drop the challenger alias from it."""
    client.set_model_version_tag(name, version, STATUS_TAG, "rejected")
    client.set_model_version_tag(name, version, REASON_TAG, reason)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    """Point `champion` at a version; a challenger alias on the same version is removed."""
    client.set_registered_model_alias(name, CHAMPION, version)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def set_challenger(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHALLENGER, version)


@dataclass(frozen=True)
class VersionRow:
    """One line of `fraud models list`."""

    version: str
    aliases: tuple[str, ...]
    kind: str
    roc_auc: str
    pr_auc: str
    threshold: str
    status: str
    reason: str
    created: pd.Timestamp


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    """All versions, newest first, with their aliases, key metrics and gate verdicts."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as e:
        raise NotFoundError(f"no registered model {name!r}: {e.message}") from e
    aliases: dict[str, list[str]] = {}
    try:
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    except MlflowException:
        pass
    rows = [
        VersionRow(
            version=str(v.version),
            aliases=tuple(sorted(aliases.get(str(v.version), []))),
            kind=v.tags.get("kind", "?"),
            roc_auc=v.tags.get("roc_auc", "-"),
            pr_auc=v.tags.get("pr_auc", "-"),
            threshold=v.tags.get("threshold", "-"),
            status=v.tags.get(STATUS_TAG, "-"),
            reason=v.tags.get(REASON_TAG, ""),
            created=pd.Timestamp(v.creation_timestamp, unit="ms"),
        )
        for v in versions
    ]
    return sorted(rows, key=lambda r: int(r.version), reverse=True)
