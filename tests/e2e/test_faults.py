"""Faults on the cluster, each under constant load through the Gateway with every failed request
counted: predictor pods deleted, PostgreSQL down, MLflow down while predictors restart (and how
`FRAUD_FAIL_FAST` recovers once it is back), `helm upgrade` during a canary, the Envoy data plane
deleted, the node container restarted. Two replicas per role, as the production values have.

Beside `make e2e`: `make faults` (scripts/kind/e2e.sh faults). Each scenario adds a row to the
table in $FRAUD_E2E_FAULTS_REPORT (the README's figures). Runs in file order; the node restart last.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fraudcore.auditdb import TABLE
from tests.e2e.conftest import MODEL, NAMESPACE, RELEASE, ROOT, Release, features_body
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.test_cluster import Load, canary, settle

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

REPLICAS = 2
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
PREDICTORS = f"{SELECTOR},app.kubernetes.io/component=predictor"


def report(scenario: str, load: Load, recovery: str) -> None:
    """One row of the figures table: failed/total requests and what recovery took."""
    line = f"| {scenario} | {len(load.failures)} / {load.total()} | {recovery} |\n"
    with Path(os.environ.get("FRAUD_E2E_FAULTS_REPORT", os.devnull)).open("a") as out:
        out.write(line)


def predictor_pods(cluster: Cluster, role: str) -> list[dict]:
    selector = f"{PREDICTORS},fraud-detection.io/role={role}"
    pods = cluster.json("-n", NAMESPACE, "get", "pod", "-l", selector)["items"]
    return [p for p in pods if "deletionTimestamp" not in p["metadata"]]


def ready(pod: dict) -> bool:
    return all(s.get("ready") for s in pod["status"].get("containerStatuses") or [{"ready": False}])


def replace_pod(cluster: Cluster, role: str, timeout: float = 300) -> float:
    """Delete one pod of `role`; seconds until its replacement is Ready (the role back at REPLICAS)."""
    before = {p["metadata"]["name"] for p in predictor_pods(cluster, role)}
    victim = sorted(before)[0]
    t0 = time.monotonic()
    cluster.kubectl("-n", NAMESPACE, "delete", "pod", victim, "--wait=false")

    def replaced() -> bool:
        pods = predictor_pods(cluster, role)
        fresh = [p for p in pods if p["metadata"]["name"] not in before]
        return bool(fresh) and all(ready(p) for p in fresh) and sum(map(ready, pods)) >= REPLICAS

    wait_for(f"a Ready replacement of {role} pod {victim}", replaced, timeout=timeout, every=1)
    return time.monotonic() - t0


def scale(cluster: Cluster, kind: str, component: str, replicas: int) -> None:
    """Scale the release's MLflow Deployment or PostgreSQL StatefulSet and wait for it."""
    selector = f"{SELECTOR},app.kubernetes.io/component={component}"
    cluster.kubectl("-n", NAMESPACE, "scale", kind, "-l", selector, f"--replicas={replicas}")
    if replicas:
        cluster.kubectl(
            "-n", NAMESPACE, "rollout", "status", kind, "-l", selector, "--timeout=300s", timeout=330
        )
    else:
        cluster.kubectl(
            "-n", NAMESPACE, "wait", "--for=delete", "pod", "-l", selector, "--timeout=180s", timeout=200
        )


def in_pod(cluster: Cluster, pod: str, code: str) -> str:
    """Run Python in a predictor container (its own loopback: the metrics, the model cache)."""
    return cluster.kubectl("-n", NAMESPACE, "exec", pod, "-c", "kserve-container", "--", "python", "-c", code)


def pod_metric(cluster: Cluster, pod: str, name: str) -> float:
    code = (
        "import urllib.request; from prometheus_client.parser import text_string_to_metric_families as f; "
        "text = urllib.request.urlopen('http://127.0.0.1:8080/metrics', timeout=10).read().decode(); "
        f"print(sum(s.value for m in f(text) for s in m.samples if s.name == {name!r}))"
    )
    return float(in_pod(cluster, pod, code))


def psql(cluster: Cluster, query: str) -> str:
    selector = f"{SELECTOR},app.kubernetes.io/component=database"
    [pod] = cluster.json("-n", NAMESPACE, "get", "pod", "-l", selector)["items"]
    return cluster.kubectl(
        "-n", NAMESPACE, "exec", pod["metadata"]["name"], "--", "sh", "-c",
        f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{query}"',
    ).strip()  # fmt: skip


def serving_since(load: Load, t0: float) -> Callable[[], float | None]:
    """A probe: seconds from t0 once a request through the Gateway succeeds."""

    def probe() -> float | None:
        with httpx.Client() as client:
            ok = client.post(load.release.infer_url(), json=features_body(), timeout=5).status_code == 200
        return time.monotonic() - t0 if ok else None

    return probe


@pytest.fixture(scope="module")
def two_replicas(cluster: Cluster, release: Release) -> Iterator[Release]:
    """The release with two replicas per role and both roles serving (weight 50)."""
    helm = ("upgrade", RELEASE, str(ROOT / "charts/fraud-detection"), "-n", NAMESPACE, "--reuse-values")
    cluster.helm_(
        *helm, "--set", f"predictor.minReplicas={REPLICAS}", "--set", f"predictor.maxReplicas={REPLICAS}"
    )
    for role in ("champion", "challenger"):
        wait_for(
            f"{REPLICAS} Ready {role} pods",
            lambda r=role: sum(map(ready, predictor_pods(cluster, r))) == REPLICAS,
        )
    canary(cluster, release, "set", "50")
    settle(release, {("champion", "1"), ("challenger", "2")}, "50/50 split")
    yield release
    cluster.helm_(*helm, "--set", "predictor.minReplicas=1", "--set", "predictor.maxReplicas=1")


# ---- scenarios --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["champion", "challenger"])
def test_a_deleted_predictor_pod_fails_no_request(cluster: Cluster, two_replicas: Release, role: str) -> None:
    with Load(two_replicas) as load:
        time.sleep(3)
        seconds = replace_pod(cluster, role)
        time.sleep(3)
    report(f"{role} pod deleted", load, f"replacement Ready in {seconds:.0f} s")
    assert load.total() > 100 and not load.failures, load.failures[:3]


def test_postgres_down_for_a_minute_loses_no_request_and_no_audit_row(
    cluster: Cluster, two_replicas: Release
) -> None:
    prefix = f"fault-pg-{int(time.time())}"
    with Load(two_replicas, request_id_prefix=prefix) as load:
        time.sleep(3)
        scale(cluster, "statefulset", "database", 0)
        time.sleep(60)
        scale(cluster, "statefulset", "database", 1)
        back = time.monotonic()
        time.sleep(3)
    pods = [p["metadata"]["name"] for r in ("champion", "challenger") for p in predictor_pods(cluster, r)]
    wait_for(
        "the audit buffers written out",
        lambda: all(pod_metric(cluster, p, "fraud_audit_buffered_rows") == 0 for p in pods),
        timeout=300,
        every=3,
    )
    flushed = time.monotonic() - back
    written = int(psql(cluster, f"SELECT count(*) FROM {TABLE} WHERE request_id LIKE '{prefix}-%'"))
    dropped = sum(pod_metric(cluster, p, "fraud_audit_dropped_rows_total") for p in pods)
    report(
        "PostgreSQL down 60 s",
        load,
        f"{written} audit rows written {flushed:.0f} s after it was back, {dropped:.0f} dropped",
    )
    assert load.total() > 100 and not load.failures, load.failures[:3]
    assert dropped == 0 and written == sum(load.ok.values())


def test_predictors_restarted_while_mlflow_is_down_serve_from_the_cache(
    cluster: Cluster, two_replicas: Release
) -> None:
    normal = {role: replace_pod(cluster, role) for role in ("champion", "challenger")}
    with Load(two_replicas) as load:
        time.sleep(3)
        scale(cluster, "deploy", "mlflow", 0)
        outage = {role: replace_pod(cluster, role) for role in ("champion", "challenger")}
        scale(cluster, "deploy", "mlflow", 1)
        time.sleep(3)
    figures = ", ".join(f"{r} Ready in {outage[r]:.0f} s (normally {normal[r]:.0f} s)" for r in outage)
    report("MLflow down, a pod of each role restarted", load, figures)
    assert load.total() > 100 and not load.failures, load.failures[:3]


@pytest.mark.parametrize("fail_fast", ["false", "true"])
def test_a_predictor_without_its_model_recovers_once_mlflow_is_back(
    cluster: Cluster, two_replicas: Release, fail_fast: str
) -> None:
    """A challenger pod that has no copy of its version (cache emptied) starts while MLflow is
    down, waits 90 s, then MLflow returns: how long until it serves, by `FRAUD_FAIL_FAST`."""
    isvc = f"{two_replicas.name}-challenger"
    env = {"name": "FRAUD_FAIL_FAST", "value": fail_fast}
    patch = json.dumps([{"op": "add", "path": "/spec/predictor/containers/0/env/-", "value": env}])
    cluster.kubectl("-n", NAMESPACE, "patch", "inferenceservice", isvc, "--type=json", "-p", patch)
    wait_for("the challenger rolled with FRAUD_FAIL_FAST", lambda: _rolled(cluster, fail_fast), timeout=300)
    with Load(two_replicas) as load:
        scale(cluster, "deploy", "mlflow", 0)
        [pod, *_] = predictor_pods(cluster, "challenger")
        in_pod(
            cluster, pod["metadata"]["name"], f"import shutil; shutil.rmtree('/tmp/.fraud/models/{MODEL}')"
        )
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", pod["metadata"]["name"], "--wait=false")
        time.sleep(90)
        scale(cluster, "deploy", "mlflow", 1)
        back = time.monotonic()
        wait_for(
            "the waiting challenger Ready",
            lambda: sum(map(ready, predictor_pods(cluster, "challenger"))) == REPLICAS,
            timeout=420,
            every=1,
        )
        seconds = time.monotonic() - back
    report(
        f"challenger without its model, FRAUD_FAIL_FAST={fail_fast}",
        load,
        f"Ready {seconds:.0f} s after MLflow was back",
    )
    spec = cluster.json("-n", NAMESPACE, "get", "inferenceservice", isvc)["spec"]["predictor"]["containers"][
        0
    ]["env"]
    drop = json.dumps([{"op": "remove", "path": f"/spec/predictor/containers/0/env/{len(spec) - 1}"}])
    cluster.kubectl("-n", NAMESPACE, "patch", "inferenceservice", isvc, "--type=json", "-p", drop)
    assert not load.failures, load.failures[:3]


def test_helm_upgrade_during_a_canary_keeps_it_and_fails_no_request(
    cluster: Cluster, two_replicas: Release
) -> None:
    canary(cluster, two_replicas, "set", "30")
    helm = ("upgrade", RELEASE, str(ROOT / "charts/fraud-detection"), "-n", NAMESPACE, "--reuse-values")
    with Load(two_replicas) as load:
        time.sleep(3)
        t0 = time.monotonic()
        # A changed pod template (the default is 5) rolls every predictor Deployment; helm cannot
        # wait for InferenceServices, so the suite waits for the new pods itself.
        cluster.helm_(*helm, "--set", "predictor.preStopSleepSeconds=6", timeout=700)
        wait_for("every predictor pod rolled", lambda: _rolled_to_prestop(cluster, "6"), timeout=600)
        seconds = time.monotonic() - t0
        time.sleep(3)
    report("`helm upgrade` rolling both roles at weight 30", load, f"all 4 pods replaced in {seconds:.0f} s")
    assert load.total() > 100 and not load.failures, load.failures[:3]
    route = cluster.json("-n", NAMESPACE, "get", "httproute", two_replicas.name)
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [70, 30], (
        "the live weights were kept"
    )


def test_a_drain_evicts_one_predictor_pod_per_role_at_a_time(cluster: Cluster, two_replicas: Release) -> None:
    """`kubectl drain` of the one node, its predictor pods only: the PodDisruptionBudgets let one
    pod per role go and refuse the second while the first has no Ready replacement (on one
    cordoned node it never gets one, so the drain times out), and no request fails."""
    with Load(two_replicas) as load:
        time.sleep(3)
        drained = cluster.kubectl(
            "drain", cluster.node, f"--pod-selector={PREDICTORS}", "--timeout=60s",
            "--delete-emptydir-data", check=False, timeout=120,
        )  # fmt: skip
        left = {role: sum(map(ready, predictor_pods(cluster, role))) for role in ("champion", "challenger")}
        cluster.kubectl("uncordon", cluster.node)
        for role in ("champion", "challenger"):
            wait_for(
                f"{role} back at {REPLICAS}",
                lambda r=role: sum(map(ready, predictor_pods(cluster, r))) == REPLICAS,
            )
        time.sleep(3)
    report(
        "`kubectl drain` of the node (predictor pods, production budgets)",
        load,
        f"Ready pods left per role during the drain: {left}",
    )
    assert left == {"champion": REPLICAS - 1, "challenger": REPLICAS - 1}, drained
    assert load.total() > 100 and not load.failures, load.failures[:3]


def test_the_envoy_data_plane_deleted(cluster: Cluster, two_replicas: Release) -> None:
    """One Envoy replica (the kind add-ons): requests fail until its replacement is up; stated."""
    selector = "gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway"
    with Load(two_replicas) as load:
        time.sleep(3)
        t0 = time.monotonic()
        cluster.kubectl("-n", "envoy-gateway-system", "delete", "pod", "-l", selector, "--wait=false")
        time.sleep(2)
        seconds = wait_for("the gateway serving again", serving_since(load, t0), timeout=300, every=0.5)
        time.sleep(3)
    report("Envoy data-plane pod deleted (1 replica)", load, f"serving again after {seconds:.0f} s")
    assert sum(load.ok.values()) > 100


def test_the_node_container_restarted(cluster: Cluster, two_replicas: Release) -> None:
    """`docker restart` of the kind node: the cluster, the release and its canary come back."""
    with Load(two_replicas) as load:
        time.sleep(3)
        t0 = time.monotonic()
        cluster.run("docker", "restart", cluster.node, timeout=300)
        seconds = wait_for("the release serving again", serving_since(load, t0), timeout=900, every=2)
        time.sleep(3)
    report("kind node container restarted", load, f"serving again after {seconds:.0f} s")
    settle(
        two_replicas,
        {("champion", "1"), ("challenger", "2")},
        "both roles serving after the restart",
        timeout=600,
    )


def _rolled(cluster: Cluster, fail_fast: str) -> bool:
    pods = predictor_pods(cluster, "challenger")
    envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods]
    return (
        len(pods) == REPLICAS
        and all(e.get("FRAUD_FAIL_FAST") == fail_fast for e in envs)
        and all(map(ready, pods))
    )


def _rolled_to_prestop(cluster: Cluster, seconds: str) -> bool:
    pods = [p for role in ("champion", "challenger") for p in predictor_pods(cluster, role)]
    sleeps = [p["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1] for p in pods]
    return len(pods) == 2 * REPLICAS and set(sleeps) == {seconds} and all(map(ready, pods))
