"""All MLflow access: find a model by URI (with a local copy for registry outages), register
versions, move aliases, record gate verdicts, and log the jobs' runs.

One `Registry` is built per entry point and passed down. It knows nothing of training: callers
hand it plain values (a bundle directory, params, metrics, tags, files).
"""

import logging
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import fraudcore
from fraudcore.bundle import Bundle, load_bundle
from fraudcore.errors import DataValidationError, InvalidInputError, NotFoundError, UnavailableError
from fraudcore.names import (
    CHALLENGER,
    CHAMPION,
    MODEL_URI,
    REASON_TAG,
    RUN_TAG,
    STATUS_TAG,
    TOP_REASON_TAG,
    version_uri,
)
from fraudcore.pyfunc import BUNDLE_ARTIFACT, BundlePyfunc
from fraudcore.settings import Settings, quiet_mlflow

logger = logging.getLogger(__name__)

_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: a registry version, a registry alias, or a local bundle path."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None
    path: Path | None = None


def parse_model_uri(uri: str) -> ModelRef:
    """`models:/name/7`, `models:/name@champion` or a local bundle directory."""
    if uri.startswith("models:"):
        match = MODEL_URI.match(uri)
        if not match:
            raise InvalidInputError(
                f"model URI {uri!r} is not models:/<name>/<version> or models:/<name>@<alias>"
            )
        return ModelRef(**match.groupdict())
    return ModelRef(path=Path(uri))


@dataclass
class LoadedModel:
    """A bundle with the registry identity it was loaded under."""

    bundle: Bundle
    name: str
    version: str
    from_cache: bool = False


@dataclass(frozen=True)
class VersionRow:
    """One line of `fraud models list`."""

    version: str
    aliases: tuple[str, ...]
    kind: str
    roc_auc: str
    pr_auc: str
    inputs: str
    threshold: str
    status: str
    reason: str
    created: pd.Timestamp
    top_reason_change: str = "-"


@dataclass(frozen=True)
class RunLog:
    """An open MLflow run a job logs its numbers and files to."""

    client: MlflowClient
    run_id: str
    experiment_id: str

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value)

    def log_param(self, key: str, value: str) -> None:
        self.client.log_param(self.run_id, key, value)

    def log_files(self, *paths: Path) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def log_child(
        self,
        run_name: str,
        params: Mapping[str, str | int | float],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> str:
        """A finished run nested under this one (one trial of a search, say); returns its id."""
        child = self.client.create_run(
            self.experiment_id, run_name=run_name, tags={MLFLOW_PARENT_RUN_ID: self.run_id, **tags}
        )
        now = int(time.time() * 1000)
        self.client.log_batch(
            child.info.run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            params=[Param(key, str(value)) for key, value in params.items()],
        )
        self.client.set_terminated(child.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
        return str(child.info.run_id)


class Registry:
    """The MLflow tracking store and model registry of one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.registered_model
        self._loaded: dict[tuple[str, str], LoadedModel] = {}

    @cached_property
    def client(self) -> MlflowClient:
        """Point MLflow at the configured tracking and registry store (on first use)."""
        quiet_mlflow()
        uri = self.settings.resolved_tracking_uri
        if uri.startswith("sqlite:"):
            self.settings.home.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def reachable(self, timeout: float = 3.0) -> bool:
        """Quick check before MLflow's own long retry loop: is a remote tracking server answering?"""
        uri = self.settings.resolved_tracking_uri
        if not uri.startswith(("http://", "https://")):
            return True
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # -- models --------------------------------------------------------------------------------

    def load(self, uri: str) -> LoadedModel:
        """Resolve, download (or reuse the local copy) and load the model a URI names."""
        ref = parse_model_uri(uri)
        if ref.path is not None:
            bundle = load_bundle(_bundle_dir(ref.path))
            return LoadedModel(bundle, name=ref.path.name, version=ref.path.name)
        assert ref.name is not None
        cache = self.settings.model_cache_dir / ref.name
        if not self.reachable():
            return _load_cached(ref, cache, reason="the registry is unreachable")
        client = self.client  # also points MLflow's artifact download at this store
        try:
            version = str(ref.version or client.get_model_version_by_alias(ref.name, ref.alias).version)
            target = cache / version
            if (ref.name, version) not in self._loaded and not target.exists():
                _download(version_uri(ref.name, version), target)
        except MlflowException as e:
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise NotFoundError(f"{uri} is not in the registry: {e.message}") from e
            return _load_cached(ref, cache, reason=f"the registry failed: {e.message}")
        if ref.alias:
            (cache / f"@{ref.alias}").write_text(version)
        if (ref.name, version) not in self._loaded:
            self._loaded[ref.name, version] = LoadedModel(load_bundle(_bundle_dir(target)), ref.name, version)
        return self._loaded[ref.name, version]

    def download(self, artifact_uri: str) -> Path:
        """A logged file (`runs:/<run id>/<file>`) downloaded to a local path."""
        uri = self.settings.resolved_tracking_uri
        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, tracking_uri=uri))
        except (MlflowException, OSError) as e:
            raise DataValidationError(f"data source {artifact_uri} cannot be downloaded: {e}") from e

    def load_version(self, version: str) -> LoadedModel:
        """One version of the registered model."""
        return self.load(version_uri(self.name, version))

    def register_bundle(
        self,
        bundle_dir: Path,
        *,
        run_id: str,
        params: Mapping[str, str | int | float],
        metrics: Mapping[str, float],
        run_tags: Mapping[str, str],
        version_tags: Mapping[str, str],
        example: pd.DataFrame,
        example_scores: np.ndarray,
        metadata: Mapping[str, str | float],
    ) -> str:
        """Log a model bundle to an open run (`job_run`) as a pyfunc model with signature and input
        example, and register it as a new version carrying `version_tags`; returns the version."""
        from mlflow.models import infer_signature

        with mlflow.start_run(run_id=run_id) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.set_tags(run_tags)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=BundlePyfunc(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                code_paths=[str(Path(fraudcore.__file__).parent)],
                signature=infer_signature(example, example_scores),
                input_example=example,
                pip_requirements=[
                    f"xgboost-cpu=={package_version('xgboost-cpu')}",
                    f"lightgbm=={package_version('lightgbm')}",
                    "numpy<2",
                    "pandas<3",
                    f"mlflow-skinny=={mlflow.__version__}",
                ],
                metadata=dict(metadata),
            )
        registered = mlflow.register_model(info.model_uri, self.name, tags={"run_id": run.info.run_id})
        for key, value in version_tags.items():
            self.client.set_model_version_tag(self.name, registered.version, key, value)
        logger.info("registered %s version %s", self.name, registered.version)
        return str(registered.version)

    # -- aliases and verdicts ------------------------------------------------------------------

    def alias_version(self, alias: str) -> str | None:
        """The version an alias points to, or None when the alias is unset."""
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as e:
            if e.error_code in _MISSING:
                return None
            raise

    def has_version(self, version: str) -> bool:
        """Whether the version is registered (any other registry failure raises)."""
        try:
            self.client.get_model_version(self.name, version)
        except MlflowException as e:
            if e.error_code in _MISSING:
                return False
            raise
        return True

    def require_version(self, version: str) -> None:
        if not self.has_version(version):
            raise NotFoundError(f"{self.name} has no version {version}")

    def record_verdict(
        self, version: str, passed: bool, reason: str, top_reason_change: str | None = None
    ) -> None:
        """Keep the gate's verdict on the version, whatever it was, and how often its top reason code
        differed from the champion's (informational, when measured)."""
        self.client.set_model_version_tag(self.name, version, STATUS_TAG, "passed" if passed else "rejected")
        self.client.set_model_version_tag(self.name, version, REASON_TAG, reason)
        if top_reason_change is not None:
            self.client.set_model_version_tag(self.name, version, TOP_REASON_TAG, top_reason_change)

    def mark_rejected(self, version: str, reason: str) -> None:
        """Reject a version (e.g. after a canary rollback) and drop the challenger alias from it."""
        self.record_verdict(version, False, reason)
        self._drop_challenger(version)
        logger.info("%s version %s tagged rejected", self.name, version)

    def set_champion(self, version: str) -> None:
        """Point `champion` at a version; a challenger alias on the same version is removed."""
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        self._drop_challenger(version)
        logger.info("%s version %s is @champion", self.name, version)

    def set_challenger(self, version: str) -> None:
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)

    def _drop_challenger(self, version: str) -> None:
        if self.alias_version(CHALLENGER) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)

    def list_versions(self) -> list[VersionRow]:
        """All versions, newest first, with their aliases, key metrics and gate verdicts."""
        try:
            versions = self.client.search_model_versions(f"name='{self.name}'")
        except MlflowException as e:
            raise NotFoundError(f"no registered model {self.name!r}: {e.message}") from e
        aliases: dict[str, list[str]] = {}
        try:
            for alias, version in self.client.get_registered_model(self.name).aliases.items():
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
                inputs=v.tags.get("inputs", "-"),
                threshold=v.tags.get("threshold", "-"),
                status=v.tags.get(STATUS_TAG, "-"),
                reason=v.tags.get(REASON_TAG, ""),
                created=pd.Timestamp(v.creation_timestamp, unit="ms"),
                top_reason_change=v.tags.get(TOP_REASON_TAG, "-"),
            )
            for v in versions
        ]
        return sorted(rows, key=lambda r: int(r.version), reverse=True)

    # -- the jobs' runs ------------------------------------------------------------------------

    def experiment_id(self) -> str:
        """The experiment id; the embedded store keeps its artifacts under the local home."""
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        if experiment is not None:
            return experiment.experiment_id
        location = None if self.settings.tracking_uri else self.settings.artifact_root.as_uri()
        return self.client.create_experiment(self.settings.experiment, artifact_location=location)

    @contextmanager
    def job_run(self, job: str, run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[RunLog]:
        """An MLflow run tagged with the job's name; FINISHED when the block completes, else FAILED."""
        experiment_id = self.experiment_id()
        run = self.client.create_run(experiment_id, run_name=run_name, tags={RUN_TAG: job, **(tags or {})})
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            yield RunLog(self.client, run.info.run_id, experiment_id)
            status = RunStatus.to_string(RunStatus.FINISHED)
        finally:
            self.client.set_terminated(run.info.run_id, status)

    def latest_job_tags(self, job: str) -> dict[str, str] | None:
        """The tags of the most recent run of a job; None when it has never run."""
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{RUN_TAG}` = '{job}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return dict(runs[0].data.tags) if runs else None


def _download(model_uri: str, target: Path) -> None:
    """Download into a directory of this process's own, then rename it into place: pods sharing a
    cache volume may fetch the same version at once, and the first rename wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(partial))
        partial.rename(target)
    except OSError:
        if not target.is_dir():  # not lost to another process's rename: a real failure
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _bundle_dir(path: Path) -> Path:
    """A registry download keeps the bundle under artifacts/; a bare bundle path is used as is."""
    nested = path / "artifacts" / BUNDLE_ARTIFACT
    return nested if nested.is_dir() else path


def _load_cached(ref: ModelRef, cache: Path, reason: str) -> LoadedModel:
    assert ref.name is not None
    version = ref.version
    if version is None and (cache / f"@{ref.alias}").exists():
        version = (cache / f"@{ref.alias}").read_text().strip()
    if version is None or not (cache / version).is_dir():
        raise UnavailableError(f"cannot load {ref.name}: {reason} and no local copy is cached")
    logger.warning("%s; serving the cached copy of %s version %s", reason, ref.name, version)
    return LoadedModel(load_bundle(_bundle_dir(cache / version)), ref.name, version, True)
