"""Fixtures for the chart tier: helm, the cached CRDs and schemas, and a real kube-apiserver.

The tools come from scripts/tools.sh. Outside `make test` a missing tool skips these tests with a
reason; with FRAUD_REQUIRE_CHART_TOOLS=1 (set by `make test`) it fails them instead.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart import cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "fraud-detection"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CACHE = Path(os.environ.get("FRAUD_CACHE_DIR") or Path.home() / ".cache" / "fraud-detection")
KUBE_VERSION = "v1.32.13"
CRD_SOURCES = ("kserve", "gateway-api", "prometheus-operator")
FIELD_MANAGER = "fraud-chart-tests"

pytestmark = pytest.mark.chart


def require_tools(paths: dict[str, Path]) -> None:
    missing = [name for name, p in paths.items() if not p.exists()]
    if not missing:
        return
    reason = f"chart tools missing ({', '.join(missing)} under {CACHE}): run scripts/tools.sh"
    if os.environ.get("FRAUD_REQUIRE_CHART_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    path = CACHE / "bin" / "helm"
    require_tools({"helm": path})
    return path


@pytest.fixture(scope="session")
def helm(helm_bin: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run helm; raises with helm's stderr on failure unless check=False."""

    def run(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(CACHE / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(CACHE / "helm" / "config"),
            "HELM_DATA_HOME": str(CACHE / "helm" / "data"),
        }
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, env=env, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess]) -> Callable[..., list[dict]]:
    """Render the chart offline (no cluster lookups) and return the objects."""

    def run(*args: str, namespace: str = "fraud", release: str = "fraud") -> list[dict]:
        out = helm(
            "template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION, *args
        ).stdout
        return [d for d in yaml.load_all(out, Loader=UniqueKeyLoader) if d]

    return run


class UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a mapping that repeats a key: helm accepts one, kubectl apply keeps the last value
    silently, and strict YAML readers such as skaffold's post-renderer fail on it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"repeated keys {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@pytest.fixture(scope="session")
def crd_docs() -> list[dict]:
    dirs = {name: CACHE / "crds" / name for name in CRD_SOURCES}
    require_tools(dirs)
    docs = [d for path in dirs.values() for d in cluster.load_yaml_dir(path)]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


@pytest.fixture(scope="session")
def openapi_dir() -> Path:
    path = CACHE / "openapi" / "kubernetes"
    require_tools({"Kubernetes OpenAPI spec": path})
    return path


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, crd_docs: list[dict]
) -> Iterator[cluster.ControlPlane]:
    """etcd + kube-apiserver with the KServe, Gateway API and prometheus-operator CRDs installed."""
    bins = {name: CACHE / "bin" / name for name in ("etcd", "kube-apiserver")}
    require_tools(bins)
    plane = cluster.start(CACHE / "bin", tmp_path_factory.mktemp("control-plane"))
    try:
        kube = cluster.Kube(plane.kubeconfig)
        for crd in crd_docs:
            kube.apply(crd, field_manager=FIELD_MANAGER)
        kube.wait_crds_established([c["metadata"]["name"] for c in crd_docs])
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: cluster.ControlPlane) -> cluster.Kube:
    """Admin client for the control plane (discovery already knows the CRDs)."""
    return cluster.Kube(control_plane.kubeconfig)


_namespace_counter = iter(range(10_000))


@pytest.fixture
def restricted_namespace(kube: cluster.Kube, request: pytest.FixtureRequest) -> str:
    """A fresh namespace that enforces the `restricted` Pod Security Standard."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{base}-{next(_namespace_counter)}-{int(time.time()) % 10_000}"
    kube.create_restricted_namespace(name)
    return name
