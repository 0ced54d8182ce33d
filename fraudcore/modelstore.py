"""Find a model by URI, resolve aliases to versions, and keep a local copy for registry outages."""

import logging
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fraudcore.bundle import Bundle, load_bundle
from fraudcore.errors import InvalidInputError, NotFoundError, UnavailableError
from fraudcore.pyfunc import BUNDLE_ARTIFACT
from fraudcore.settings import Settings, quiet_mlflow

logger = logging.getLogger(__name__)

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


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
        match = _REGISTRY_URI.match(uri)
        if not match:
            raise InvalidInputError(
                f"model URI {uri!r} is not models:/<name>/<version> or models:/<name>@<alias>"
            )
        return ModelRef(**match.groupdict())
    return ModelRef(path=Path(uri))


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking and registry store and return a client."""
    quiet_mlflow()
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registry_reachable(settings: Settings, timeout: float = 3.0) -> bool:
    """Quick check before MLflow's own long retry loop: is a remote tracking server answering?"""
    uri = settings.resolved_tracking_uri
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LoadedModel:
    """A bundle with the registry identity it was loaded under."""

    bundle: Bundle
    name: str
    version: str
    from_cache: bool = False


def load_model(uri: str, settings: Settings) -> LoadedModel:
    """Resolve, download (or reuse the local copy) and load the model a URI names."""
    ref = parse_model_uri(uri)
    if ref.path is not None:
        bundle = load_bundle(_bundle_dir(ref.path))
        return LoadedModel(bundle, name=ref.path.name, version=ref.path.name)
    assert ref.name is not None
    cache = settings.model_cache_dir / ref.name
    if not registry_reachable(settings):
        return _load_cached(ref, cache, reason="the registry is unreachable")
    client = connect(settings)
    try:
        version = ref.version or client.get_model_version_by_alias(ref.name, ref.alias).version
        target = cache / str(version)
        if not target.exists():
            _download(f"models:/{ref.name}/{version}", target)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NotFoundError(f"{uri} is not in the registry: {e.message}") from e
        return _load_cached(ref, cache, reason=f"the registry failed: {e.message}")
    if ref.alias:
        (cache / f"@{ref.alias}").write_text(str(version))
    return LoadedModel(load_bundle(_bundle_dir(target)), ref.name, str(version))


def _download(model_uri: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(partial))
    partial.rename(target)


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
