"""Tier 2 against a real kube-apiserver + etcd: the chart installs into a restricted namespace."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.chart import cluster
from tests.chart.conftest import CHART, CI_VALUES, REPO
from tests.chart.podspecs import as_pod, pod_templates

pytestmark = pytest.mark.chart

Helm = Callable[..., subprocess.CompletedProcess]


def _apply_all(kube: cluster.Kube, objs: list[dict], namespace: str) -> None:
    for obj in objs:
        kube.apply(obj, namespace=namespace)
        got = kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)
        assert got["metadata"]["uid"], obj["metadata"]["name"]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_chart_applies_into_restricted_namespace(
    kube: cluster.Kube, render: Callable[..., list[dict]], restricted_namespace: str, values: Path
) -> None:
    """Server-side apply (fieldValidation=Strict) of every object, then Pod Security admission of
    every pod the objects would create, as bare Pods in the enforcing namespace."""
    objs = render("-f", str(values), namespace=restricted_namespace, release="fraud")
    # The Grafana dashboard may target another namespace; keep it in the test namespace.
    for obj in objs:
        obj["metadata"]["namespace"] = restricted_namespace
    _apply_all(kube, objs, restricted_namespace)
    pods = [(where, labels, spec) for obj in objs for where, labels, spec in pod_templates(obj)]
    assert pods
    for i, (where, labels, spec) in enumerate(pods):
        try:
            kube.create(as_pod(f"admission-{i}", labels, spec), namespace=restricted_namespace, dry_run=True)
        except ApiException as e:
            pytest.fail(f"{where} is not admitted in a restricted namespace: {e.body}")


def test_restricted_namespace_really_enforces(kube: cluster.Kube, restricted_namespace: str) -> None:
    pod = as_pod("root", {}, {"containers": [{"name": "c", "image": "busybox"}]})
    with pytest.raises(ApiException) as err:
        kube.create(pod, namespace=restricted_namespace, dry_run=True)
    assert err.value.status == 403
    assert "violates PodSecurity" in err.value.body


def test_gateway_addon_applies(kube: cluster.Kube) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kserve"}})
    docs = [d for d in yaml.safe_load_all((REPO / "k8s" / "gateway.yaml").read_text()) if d]
    for doc in docs:
        kube.apply(doc, namespace=doc["metadata"].get("namespace"))
    gw = kube.get("gateway.networking.k8s.io/v1", "Gateway", "kserve-ingress-gateway", "kserve")
    assert gw["spec"]["listeners"][0]["port"] == 80


def _state(kube: cluster.Kube, ns: str, name: str) -> tuple[str, str, list[int]]:
    def uri(role: str) -> str:
        isvc = kube.get("serving.kserve.io/v1beta1", "InferenceService", f"{name}-{role}", ns)
        return isvc["spec"]["predictor"]["containers"][0]["env"][0]["value"]

    route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", name, ns)
    return uri("champion"), uri("challenger"), [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]]


def _mirrored(kube: cluster.Kube, ns: str, name: str) -> list[tuple[str, int]]:
    """The Services rule 0 mirrors to, with their percent."""
    route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", name, ns)
    mirrors = [f["requestMirror"] for f in route["spec"]["rules"][0].get("filters", [])]
    return [(m["backendRef"]["name"], m["percent"]) for m in mirrors]


def test_helm_upgrade_keeps_live_canary_state(
    helm: Helm, control_plane: cluster.ControlPlane, kube: cluster.Kube, restricted_namespace: str
) -> None:
    """`helm install`, change the canary with the documented kubectl patches, `helm upgrade`."""
    ns, name = restricted_namespace, "fraud-fraud-detection"
    values = str(CHART / "ci" / "canary-values.yaml")
    args = ("fraud", str(CHART), "-n", ns, "-f", values)
    out = helm("install", *args, kubeconfig=control_plane.kubeconfig)
    assert "would violate PodSecurity" not in out.stderr, out.stderr
    assert f"fraud canary set 10   -n {ns} --name {name}" in out.stdout
    assert _state(kube, ns, name) == ("models:/fraud-detector/3", "models:/fraud-detector/4", [90, 10])
    secret = client.CoreV1Api(kube.api).read_namespaced_secret(f"{name}-db", ns).data["password"]

    # What `fraud canary promote` leaves behind, done with the kubectl JSON patches from NOTES.txt.
    isvc = kube.resource("serving.kserve.io/v1beta1", "InferenceService")
    isvc.patch(
        name=f"{name}-champion",
        namespace=ns,
        content_type="application/json-patch+json",
        body=[
            {
                "op": "replace",
                "path": "/spec/predictor/containers/0/env/0/value",
                "value": "models:/fraud-detector/4",
            }
        ],
    )
    route = kube.resource("gateway.networking.k8s.io/v1", "HTTPRoute")
    route.patch(
        name=name,
        namespace=ns,
        content_type="application/json-patch+json",
        body=[
            {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100},
            {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0},
        ],
    )
    # What `fraud canary shadow 50` leaves behind, done with the kubectl patch from the chart README.
    shadow = f"{name}-challenger-shadow"
    backend = {"backendRef": {"name": shadow, "port": 80}, "percent": 50}
    route.patch(
        name=name, namespace=ns, content_type="application/json-patch+json",
        body=[{"op": "add", "path": "/spec/rules/0/filters",
               "value": [{"type": "RequestMirror", "requestMirror": backend}]}],
    )  # fmt: skip

    out = helm("upgrade", *args, kubeconfig=control_plane.kubeconfig)
    assert _state(kube, ns, name) == ("models:/fraud-detector/4", "models:/fraud-detector/4", [100, 0])
    assert _mirrored(kube, ns, name) == [(shadow, 50)]
    assert "The live state was kept" in out.stdout
    assert "shadow 50%" in out.stdout
    assert client.CoreV1Api(kube.api).read_namespaced_secret(f"{name}-db", ns).data["password"] == secret

    helm("upgrade", *args, "--set", "canary.respectLiveState=false", kubeconfig=control_plane.kubeconfig)
    assert _state(kube, ns, name) == ("models:/fraud-detector/3", "models:/fraud-detector/4", [90, 10])
    assert _mirrored(kube, ns, name) == []


def test_canary_service_account_is_least_privilege(
    helm: Helm,
    control_plane: cluster.ControlPlane,
    kube: cluster.Kube,
    restricted_namespace: str,
    tmp_path: Path,
) -> None:
    ns, name = restricted_namespace, "fraud-fraud-detection"
    helm("install", "fraud", str(CHART), "-n", ns, kubeconfig=control_plane.kubeconfig)
    token = kube.service_account_token(ns, f"{name}-canary")
    sa = cluster.Kube(control_plane.kubeconfig_for_token(token, tmp_path / "canary.kubeconfig", ns))
    auth = client.AuthorizationV1Api(sa.api)

    def allowed(verb: str, group: str, resource: str, obj: str = "") -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=ns, verb=verb, group=group, resource=resource, name=obj or None
                )
            )
        )
        return auth.create_self_subject_access_review(review).status.allowed

    kserve, gw = "serving.kserve.io", "gateway.networking.k8s.io"
    assert allowed("patch", gw, "httproutes", name)
    assert allowed("patch", kserve, "inferenceservices", f"{name}-champion")
    assert allowed("get", kserve, "inferenceservices", f"{name}-challenger")
    assert not allowed("patch", gw, "httproutes", "someone-elses-route")
    assert not allowed("delete", kserve, "inferenceservices", f"{name}-champion")
    assert not allowed("create", kserve, "inferenceservices")
    assert not allowed("list", kserve, "inferenceservices")
    assert not allowed("get", "", "secrets", f"{name}-db")
    assert not allowed("patch", "apps", "deployments", f"{name}-mlflow")
