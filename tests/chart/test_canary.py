"""`fraud canary` against a real kube-apiserver holding the chart's objects (no KServe controller:
where a test needs the champion to become Ready, it writes the status as KServe would)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli import app
from fraudcore.names import CHALLENGER, CHAMPION, STATUS_TAG
from jobs.canary.state import CanaryError
from tests.chart import cluster
from tests.chart.conftest import CHART, REPO
from tests.support import free_port

pytestmark = pytest.mark.chart

ISVC = "serving.kserve.io/v1beta1"
ROUTE = "gateway.networking.k8s.io/v1"
NAME = "fraud-fraud-detection"
MODEL = "fraud-detector"
SHADOW_SVC = f"{NAME}-challenger-shadow"


@dataclass
class Release:
    kube: cluster.Kube
    namespace: str
    kubeconfig: Path
    tracking_uri: str

    def uri(self, isvc: str) -> str:
        obj = self.kube.get(ISVC, "InferenceService", isvc, self.namespace)
        return obj["spec"]["predictor"]["containers"][0]["env"][0]["value"]

    def weights(self) -> list[int]:
        route = self.kube.get(ROUTE, "HTTPRoute", NAME, self.namespace)
        return [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]]

    def filters(self) -> list[tuple[str, str | None, int | None]]:
        """Rule 0's filters as (type, mirrored Service, percent)."""
        route = self.kube.get(ROUTE, "HTTPRoute", NAME, self.namespace)
        found = route["spec"]["rules"][0].get("filters") or []
        mirrors = [f.get("requestMirror", {}) for f in found]
        pairs = zip(found, mirrors, strict=True)
        return [(f["type"], m.get("backendRef", {}).get("name"), m.get("percent")) for f, m in pairs]

    def versions(self) -> dict[str, str]:
        return {"champion": self.uri(f"{NAME}-champion"), "challenger": self.uri(f"{NAME}-challenger")}

    def resource_versions(self) -> tuple[str, ...]:
        objs = [("InferenceService", f"{NAME}-champion"), ("InferenceService", f"{NAME}-challenger")]
        out = tuple(
            self.kube.get(ISVC, kind, name, self.namespace)["metadata"]["resourceVersion"]
            for kind, name in objs
        )
        return (*out, self.kube.get(ROUTE, "HTTPRoute", NAME, self.namespace)["metadata"]["resourceVersion"])

    def report_ready(self, isvc: str, ready: bool, message: str = "") -> None:
        """Write an InferenceService's Ready condition for its current generation, as KServe would."""
        obj = self.kube.get(ISVC, "InferenceService", isvc, self.namespace)
        condition = {"type": "Ready", "status": str(ready), "lastTransitionTime": "2026-01-01T00:00:00Z"}
        if message:
            condition |= {"reason": "PredictorNotReady", "message": message}
        status = {"observedGeneration": obj["metadata"]["generation"], "conditions": [condition]}
        self.kube.resource(ISVC, "InferenceService").status.patch(
            name=isvc, namespace=self.namespace, body={"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def canary(self, *args: str, kubeconfig: Path | None = None) -> tuple[int, str]:
        """Run `fraud canary ARGS` in-process, as the console script would."""
        argv = ["canary", *args, "-n", self.namespace, "--kubeconfig", str(kubeconfig or self.kubeconfig)]
        result = CliRunner().invoke(app, argv, env={"MLFLOW_TRACKING_URI": self.tracking_uri})
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient]:
    """An MLflow registry with versions 1-5 of the model; @champion 3, @challenger 4."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(5):
        client.create_model_version(MODEL, source="file:///dev/null")
    return uri, client


@pytest.fixture
def release(
    kube: cluster.Kube,
    control_plane: cluster.ControlPlane,
    render: Callable[..., list[dict]],
    restricted_namespace: str,
    registry: tuple[str, MlflowClient],
) -> Release:
    """The chart's canary scenario (champion v3, challenger v4, 90/10) applied to the API server."""
    return apply_release(kube, control_plane, render, restricted_namespace, registry)


def apply_release(
    kube: cluster.Kube,
    control_plane: cluster.ControlPlane,
    render: Callable[..., list[dict]],
    namespace: str,
    registry: tuple[str, MlflowClient],
    *values: str,
) -> Release:
    """The canary scenario (ci/canary-values.yaml and `values`) applied, both roles reported Ready."""
    uri, client = registry
    client.set_registered_model_alias(MODEL, CHAMPION, "3")
    client.set_registered_model_alias(MODEL, CHALLENGER, "4")
    for obj in render("-f", str(CHART / "ci" / "canary-values.yaml"), *values, namespace=namespace):
        kube.apply(obj, namespace=namespace)
    found = Release(kube, namespace, control_plane.kubeconfig, uri)
    for role in ("champion", "challenger"):
        found.report_ready(f"{NAME}-{role}", True)
    return found


def test_status(release: Release) -> None:
    code, out = release.canary("status")
    assert code == 0, out
    assert re.search(r"champion\s*│\s*3\s*│\s*90\b", out), out
    assert re.search(r"challenger\s*│\s*4\s*│\s*10\b", out), out
    assert "Standard mode" in out


def test_status_with_unreachable_prometheus_still_shows_the_split(release: Release) -> None:
    port = free_port()
    code, out = release.canary("status", "--prometheus-url", f"http://127.0.0.1:{port}")
    assert code == 0, out
    assert "live numbers unavailable" in out
    assert re.search(r"challenger\s*│\s*4\s*│\s*10\b", out), out


def test_set_moves_only_the_weights_and_is_idempotent(release: Release) -> None:
    before = release.resource_versions()
    code, out = release.canary("set", "25")
    assert code == 0, out
    assert "set: weights 75/25" in out
    assert release.weights() == [75, 25]
    after = release.resource_versions()
    assert after[:2] == before[:2], "InferenceServices untouched"
    code, out = release.canary("set", "25%")
    assert code == 0
    assert "nothing to change" in out
    assert release.resource_versions() == after


def test_set_can_point_the_challenger_at_a_version(release: Release) -> None:
    code, out = release.canary("set", "5", "--challenger-version", "5")
    assert code == 0, out
    assert release.versions() == {"champion": f"models:/{MODEL}/3", "challenger": f"models:/{MODEL}/5"}
    assert release.weights() == [95, 5]


def test_set_refuses_more_traffic_for_a_challenger_that_is_not_ready(release: Release) -> None:
    """A crash-looping challenger gets no more traffic (one line naming why); less is still allowed."""
    release.report_ready(f"{NAME}-challenger", False, "Deployment does not have minimum availability")
    command = ["canary", "set", "30", "-n", release.namespace, "--kubeconfig", str(release.kubeconfig)]
    proc = subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", *command],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: InferenceService {NAME}-challenger is not Ready (Deployment does not have minimum "
        f"availability): no more traffic is sent to it (kubectl describe inferenceservice "
        f"{NAME}-challenger says why)"
    ], proc.stderr
    assert release.weights() == [90, 10]
    code, out = release.canary("set", "0")
    assert code == 0, out
    assert release.weights() == [100, 0]


@pytest.mark.parametrize("bad", ["150", "-1", "ten", "12.5", "101%"])
def test_bad_percentage_is_refused_with_one_line(release: Release, bad: str) -> None:
    before = release.resource_versions()
    code, out = release.canary("set", bad)
    assert code == 2
    assert out.strip().splitlines() == [
        f"error: percentage must be a whole number from 0 to 100, got '{bad}'"
    ]
    assert release.resource_versions() == before


def test_shadow_adds_changes_and_removes_only_the_mirror(release: Release) -> None:
    """`fraud canary shadow` against the real Gateway API CRD: the weights stay, other filters stay."""
    code, out = release.canary("shadow", "20")
    assert code == 0, out
    assert f"shadow: mirror 20% to {SHADOW_SVC}" in out
    assert re.search(r"challenger\s*│\s*4\s*│\s*10\s*│\s*20\b", out), out
    assert release.filters() == [("RequestMirror", SHADOW_SVC, 20)]
    assert release.weights() == [90, 10]
    before = release.resource_versions()
    assert "shadow: nothing to change" in release.canary("shadow", "20%")[1]
    assert release.resource_versions() == before
    header = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
    }
    release.kube.resource(ROUTE, "HTTPRoute").patch(
        name=NAME, namespace=release.namespace, content_type="application/json-patch+json",
        body=[{"op": "add", "path": "/spec/rules/0/filters/0", "value": header}],
    )  # fmt: skip
    assert release.canary("shadow", "50")[0] == 0
    assert release.filters() == [("RequestHeaderModifier", None, None), ("RequestMirror", SHADOW_SVC, 50)]
    code, out = release.canary("shadow", "0")
    assert code == 0 and f"shadow: mirror to {SHADOW_SVC} removed" in out, out
    assert release.filters() == [("RequestHeaderModifier", None, None)]
    assert "shadow %" in release.canary("status")[1]


def test_shadow_refuses_more_copies_for_a_challenger_that_is_not_ready(release: Release) -> None:
    release.report_ready(f"{NAME}-challenger", False, "Deployment does not have minimum availability")
    with pytest.raises(CanaryError, match=r"not Ready \(.*\): no more requests are mirrored to it"):
        release.canary("shadow", "10")
    assert release.filters() == []


@pytest.mark.parametrize("action", [("rollback", "--no-registry"), ("promote", "--no-wait", "--no-registry")])
def test_rollback_and_promote_remove_the_mirror(release: Release, action: tuple[str, ...]) -> None:
    assert release.canary("shadow", "30")[0] == 0
    code, out = release.canary(*action)
    assert code == 0, out
    assert release.filters() == []
    assert release.weights() == [100, 0]


def test_promote(release: Release, registry: tuple[str, MlflowClient]) -> None:
    _, client = registry
    code, out = release.canary("promote", "--no-wait")
    assert code == 0, out
    assert release.versions() == {"champion": f"models:/{MODEL}/4", "challenger": f"models:/{MODEL}/4"}
    assert release.weights() == [100, 0]
    model = client.get_registered_model(MODEL)
    assert str(model.aliases.get(CHAMPION)) == "4"
    assert CHALLENGER not in model.aliases
    before = release.resource_versions()
    code, out = release.canary("promote", "--no-wait")
    assert code == 0
    assert "promote: nothing to change" in out
    assert release.resource_versions() == before


def test_promote_moves_traffic_only_after_the_rolling_update(release: Release) -> None:
    """With --wait, the weights stay 90/10 until KServe reports the champion Ready again."""
    champion = f"{NAME}-champion"
    result: dict[str, tuple[int, str]] = {}
    worker = threading.Thread(target=lambda: result.update(run=release.canary("promote", "--timeout", "60")))
    worker.start()
    deadline = time.monotonic() + 30
    while release.uri(champion) != f"models:/{MODEL}/4" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert release.uri(champion) == f"models:/{MODEL}/4"
    time.sleep(1.0)
    assert release.weights() == [90, 10], "traffic must not move before the champion is Ready"
    release.report_ready(champion, True)
    worker.join(timeout=60)
    assert result["run"][0] == 0, result["run"][1]
    assert release.weights() == [100, 0]


def test_rollback(release: Release, registry: tuple[str, MlflowClient]) -> None:
    _, client = registry
    code, out = release.canary("rollback")
    assert code == 0, out
    assert release.weights() == [100, 0]
    assert release.versions()["champion"] == f"models:/{MODEL}/3"
    assert client.get_model_version(MODEL, "4").tags[STATUS_TAG] == "rejected"
    assert CHALLENGER not in client.get_registered_model(MODEL).aliases
    before = release.resource_versions()
    code, out = release.canary("rollback")
    assert code == 0
    assert "rollback: nothing to change" in out
    assert release.resource_versions() == before


def test_canary_service_account_can_run_every_command(
    release: Release, control_plane: cluster.ControlPlane, tmp_path: Path
) -> None:
    """The chart's least-privilege Role is enough for the whole canary cycle."""
    token = release.kube.service_account_token(release.namespace, f"{NAME}-canary")
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "sa.kubeconfig", release.namespace)
    for args in (
        ("status",),
        ("set", "50"),
        ("shadow", "20"),
        ("promote", "--no-wait", "--no-registry"),
        ("rollback", "--no-registry"),
    ):
        code, out = release.canary(*args, kubeconfig=kubeconfig)
        assert code == 0, (args, out)
    assert release.weights() == [100, 0]


def test_unknown_release_is_one_clear_error(release: Release) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cli import main; main()",
            "canary",
            "status",
            "-n",
            release.namespace,
            "--kubeconfig",
            str(release.kubeconfig),
            "--name",
            "nope",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: no InferenceService nope-champion or nope in namespace {release.namespace} "
        "(--name is the release's full name, as printed by helm install)"
    ]


def test_kubectl_plugin(release: Release) -> None:
    """`kubectl fraud status` is `fraud canary status`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("kubectl-fraud")),
            "status",
            "-n",
            release.namespace,
            "--kubeconfig",
            str(release.kubeconfig),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "challenger" in proc.stdout


def test_knative_mode(
    kube: cluster.Kube,
    control_plane: cluster.ControlPlane,
    render: Callable[..., list[dict]],
    restricted_namespace: str,
) -> None:
    ns = restricted_namespace
    for obj in render("-f", str(CHART / "ci" / "knative-values.yaml"), namespace=ns):
        kube.apply(obj, namespace=ns)
    rel = Release(kube, ns, control_plane.kubeconfig, "")

    def isvc() -> tuple[dict, dict, dict]:
        obj = kube.get(ISVC, "InferenceService", NAME, ns)
        env = {e["name"]: e.get("value") for e in obj["spec"]["predictor"]["containers"][0]["env"]}
        return obj["spec"]["predictor"], env, obj["metadata"]["annotations"]

    predictor, env, _ = isvc()
    assert (predictor["canaryTrafficPercent"], env["FRAUD_MODEL_URI"]) == (20, f"models:/{MODEL}/4")

    assert rel.canary("set", "30")[0] == 0
    assert isvc()[0]["canaryTrafficPercent"] == 30
    with pytest.raises(CanaryError, match="Knative mode: shadow traffic needs the HTTPRoute"):
        rel.canary("shadow", "10")

    assert rel.canary("rollback", "--no-registry")[0] == 0
    predictor, env, _ = isvc()
    assert "canaryTrafficPercent" not in predictor
    assert (env["FRAUD_MODEL_URI"], env["FRAUD_MODEL_ROLE"]) == (f"models:/{MODEL}/3", "champion")

    assert rel.canary("set", "10", "--challenger-version", "5")[0] == 0
    predictor, env, ann = isvc()
    assert predictor["canaryTrafficPercent"] == 10
    assert (env["FRAUD_MODEL_URI"], env["FRAUD_MODEL_ROLE"]) == (f"models:/{MODEL}/5", "challenger")
    assert ann["fraud-detection.io/challenger-version"] == "5"

    code, out = rel.canary("promote", "--no-wait", "--no-registry")
    assert code == 0, out
    predictor, env, ann = isvc()
    assert "canaryTrafficPercent" not in predictor
    assert (env["FRAUD_MODEL_URI"], env["FRAUD_MODEL_ROLE"]) == (f"models:/{MODEL}/5", "champion")
    assert ann["fraud-detection.io/champion-version"] == "5"
    assert "promote: nothing to change" in rel.canary("promote", "--no-wait", "--no-registry")[1]
