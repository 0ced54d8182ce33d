"""The chart on a real cluster: v2 through the Gateway, the measured split, promote and rollback
under load, the CronJobs, every PromQL expression of the dashboard and the rules, Pod Security,
`helm test`. Runs in file order: later tests build on the traffic and state of earlier ones."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    CHALLENGER_WEIGHT,
    MODEL,
    NAMESPACE,
    RELEASE,
    Release,
    features_body,
    run_job,
    scrape_release,
    wait_job,
)
from tests.e2e.kube import Cluster, wait_for
from training.synthetic import FEATURES, generate

pytestmark = pytest.mark.e2e

FRAUD = str(Path(sys.executable).with_name("fraud"))


def infer(
    client: httpx.Client, release: Release, body: dict | None = None, request_id: str | None = None
) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else None
    return client.post(release.infer_url(), json=body or features_body(), headers=headers, timeout=15)


def roles(release: Release, n: int, threads: int = 4) -> Counter[tuple[str, str]]:
    """(role, version) of n answers, sent from `threads` keep-alive clients; any failure fails."""
    counts: Counter[tuple[str, str]] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client() as client:
            for _ in range(k):
                r = infer(client, release)
                with lock:
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    counts[(r.headers.get("x-model-role", "?"), r.headers.get("x-model-version", "?"))] += 1

    pool = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, f"{len(errors)} failed requests, first: {errors[0]}"
    return counts


@dataclass
class Load:
    """Constant v2 traffic through the Gateway from a few threads, every outcome recorded; each
    thread cycles through `bodies` (default: one all-zero transaction). With `request_id_prefix`
    every request carries `x-request-id: <prefix>-<thread>-<n>`. After a failure a thread waits
    50 ms, as a client would, rather than spin."""

    release: Release
    threads: int = 4
    bodies: list[dict] = field(default_factory=lambda: [features_body()])
    request_id_prefix: str = ""
    ok: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, thread: int) -> None:
        first = thread * (len(self.bodies) // self.threads)
        bodies = itertools.islice(itertools.cycle(self.bodies), first, None)
        with httpx.Client() as client:
            for n in itertools.count():
                if self._stop.is_set():
                    break
                request_id = f"{self.request_id_prefix}-{thread}-{n}" if self.request_id_prefix else None
                try:
                    r = infer(client, self.release, next(bodies), request_id)
                    outcome = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    r, outcome = None, f"{type(e).__name__}: {e}"
                if outcome:
                    self._stop.wait(0.05)
                with self._lock:
                    if outcome:
                        self.failures.append(outcome)
                    else:
                        self.ok[
                            (r.headers.get("x-model-role", "?"), r.headers.get("x-model-version", "?"))
                        ] += 1

    def __enter__(self) -> Load:
        self._pool = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self._pool:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._pool:
            t.join(timeout=30)

    def total(self) -> int:
        with self._lock:
            return sum(self.ok.values()) + len(self.failures)


def canary(cluster: Cluster, release: Release, *args: str) -> str:
    proc = subprocess.run(
        [
            FRAUD,
            "canary",
            *args,
            "-n",
            release.namespace,
            "--name",
            release.name,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"fraud canary {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def settle(release: Release, expect: set[tuple[str, str]], what: str, timeout: float = 120) -> None:
    """Wait until a window of 60 answers comes only from `expect` (the Gateway applies routes async)."""
    wait_for(what, lambda: set(roles(release, 60, threads=2)) <= expect, timeout=timeout, every=1)


def _mlflow(cluster: Cluster, path: str) -> dict:
    """GET an MLflow REST path from inside the MLflow pod (its allowed-hosts check admits localhost)."""
    code = (
        "import sys, urllib.request; "
        "url = 'http://localhost:5000' + sys.argv[1]; "
        "sys.stdout.write(urllib.request.urlopen(url, timeout=30).read().decode())"
    )
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=mlflow"
    pod = cluster.json("-n", NAMESPACE, "get", "pod", "-l", selector)["items"][0]["metadata"]["name"]
    return json.loads(cluster.kubectl("-n", NAMESPACE, "exec", pod, "--", "python3", "-c", code, path))


def _alias_version(cluster: Cluster, alias: str) -> str:
    found = _mlflow(cluster, f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias={alias}")
    return found["model_version"]["version"]


def _versions(cluster: Cluster) -> list[int]:
    found = _mlflow(cluster, f"/api/2.0/mlflow/model-versions/search?filter=name%3D%27{MODEL}%27")
    return sorted(int(v["version"]) for v in found.get("model_versions", []))


# ---- tests --------------------------------------------------------------------------------------


def test_every_pod_admitted_under_restricted_pod_security(cluster: Cluster, release: Release) -> None:
    labels = cluster.json("get", "namespace", NAMESPACE)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    pods = cluster.json("-n", NAMESPACE, "get", "pods")["items"]
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"predictor", "mlflow", "database"} <= components, components
    for p in pods:
        assert p["status"]["phase"] in {"Running", "Succeeded"}, (p["metadata"]["name"], p["status"]["phase"])
    events = cluster.json("-n", NAMESPACE, "get", "events")["items"]
    denied = [e["message"] for e in events if "violates PodSecurity" in e.get("message", "")]
    assert not denied, denied


def test_v2_inference_through_the_gateway(release: Release) -> None:
    with httpx.Client() as client:
        r = client.post(
            release.infer_url(), json=features_body(rows=3), headers={"x-request-id": "e2e-1"}, timeout=15
        )
    assert r.status_code == 200, r.text
    body = r.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["fraud_probability"]["datatype"] == "FP32" and outputs["fraud_probability"]["shape"] == [3]
    assert outputs["is_fraud"]["datatype"] == "BOOL"
    assert r.headers["x-model-role"] in {"champion", "challenger"}
    assert r.headers["x-model-version"] in {"1", "2"}
    assert r.headers.get("x-request-id") == "e2e-1"
    bad = httpx.post(
        release.infer_url(),
        json={"inputs": [{"name": "features", "shape": [1, 29], "datatype": "FP32", "data": [0.0] * 29}]},
        timeout=15,
    )
    assert bad.status_code == 400, bad.text


def test_measured_split_matches_the_route_weights(release: Release) -> None:
    counts = roles(release, 2000)
    total = sum(counts.values())
    challenger = sum(n for (role, _), n in counts.items() if role == "challenger")
    share = 100 * challenger / total
    assert abs(share - CHALLENGER_WEIGHT) <= 3, (
        f"challenger share {share:.1f}% of {total}, counts {dict(counts)}"
    )
    assert {v for (role, v) in counts if role == "champion"} == {"1"}
    assert {v for (role, v) in counts if role == "challenger"} == {"2"}


def test_rollback_and_promote_under_load_lose_no_request(cluster: Cluster, release: Release) -> None:
    with Load(release) as load:
        time.sleep(3)
        canary(cluster, release, "set", "50")
        settle(release, {("champion", "1"), ("challenger", "2")}, "50/50 split")
        canary(cluster, release, "rollback", "--no-registry")
        settle(release, {("champion", "1")}, "all traffic on the champion after rollback")
        canary(cluster, release, "set", str(CHALLENGER_WEIGHT))
        # Promotion from inside the cluster, as automation would run it: the canary ServiceAccount's
        # RBAC, and the in-cluster MLflow whose @champion alias follows.
        promote = f"fraud canary promote --name {release.name} --timeout 600"
        run_job(cluster, release.name, "promote-e2e", promote, timeout=900, moves_traffic=True)
        settle(release, {("champion", "2")}, "champion serving version 2 after promote")
        time.sleep(3)
    assert load.total() > 200, f"too little load: {load.total()} requests"
    assert not load.failures, (
        f"{len(load.failures)} of {load.total()} requests failed, first: {load.failures[:3]}"
    )
    assert ("champion", "2") in load.ok and ("champion", "1") in load.ok
    status = canary(cluster, release, "status")
    assert re.search(r"champion\s*\S*\s*2\s*\S*\s*100", status), status
    assert _alias_version(cluster, "champion") == "2"


def test_drift_cronjob_runs_to_completion_and_reports(
    cluster: Cluster, release: Release, prometheus: str
) -> None:
    job = f"{release.name}-drift-e2e"
    cluster.kubectl("-n", NAMESPACE, "delete", "job", job, "--ignore-not-found")
    cluster.kubectl("-n", NAMESPACE, "create", "job", f"--from=cronjob/{release.name}-drift", job)
    wait_job(cluster, job, timeout=900)

    def pushed() -> bool:
        r = httpx.get(
            f"{prometheus}/api/v1/query",
            params={"query": "fraud_drift_last_run_timestamp_seconds"},
            timeout=5,
        )
        return bool(r.json()["data"]["result"])

    wait_for("drift metrics in Prometheus (through the Pushgateway)", pushed, timeout=120)


def test_retrain_cronjob_registers_a_new_challenger(cluster: Cluster, release: Release) -> None:
    # Retraining learns from labelled traffic: score labelled transactions through the champion's
    # Service and ingest their labels (what a fraud team's feedback feed does).
    champion = f"http://{release.name}-champion-predictor.{NAMESPACE}.svc"
    feed = (
        "fraud data generate --out /tmp/feed.csv --rows 3000 --seed 5"
        f" && fraud traffic send /tmp/feed.csv --url {champion} --labels-out /tmp/labels.csv"
        " && fraud labels ingest /tmp/labels.csv"
    )
    run_job(cluster, release.name, "labels-e2e", feed, timeout=900)
    latest_before = max(_versions(cluster))
    job = f"{release.name}-retrain-e2e"
    cluster.kubectl("-n", NAMESPACE, "delete", "job", job, "--ignore-not-found")
    cluster.kubectl("-n", NAMESPACE, "create", "job", f"--from=cronjob/{release.name}-retrain", job)
    wait_job(cluster, job, timeout=1500)
    retrained = _alias_version(cluster, "challenger")
    assert int(retrained) > latest_before, retrained
    assert max(_versions(cluster)) > latest_before

    # jobs.retrain.canaryPercent: the job pointed the challenger at the new version and gave it that
    # share; the challenger's rolling update then brings the version into the answers.
    def serves_retrained() -> bool:
        seen = roles(release, 200, threads=2)
        return ("challenger", retrained) in seen and ("challenger", "2") not in seen

    wait_for("the challenger serving the retrained version", serves_retrained, 600, every=5)
    status = canary(cluster, release, "status")
    assert re.search(rf"challenger\s*\S*\s*{retrained}\s*\S*\s*{CHALLENGER_WEIGHT}\b", status), status


def test_a_challenger_of_another_schema_is_refused_by_the_gate(cluster: Cluster, release: Release) -> None:
    # Clients send the champion's inputs through the split: a PaySim-style model (text `type`, other
    # columns) must not become @challenger. The CLI exits 3 (rejected) naming the reason.
    refused = (
        "FRAUD_GATE_MIN_PR_AUC=0.3 fraud train --dataset paysim --rows 60000 --rounds 60 2>/tmp/err;"
        ' code=$?; cat /tmp/err; [ $code -eq 3 ] && grep -q "inputs differ from the champion" /tmp/err'
    )
    run_job(cluster, release.name, "paysim-challenger", refused, timeout=900)


_KEYWORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "and",
    "or",
    "unless",
    "bool",
    "inf",
    "nan",
}
_TOKEN = re.compile(
    r'(?P<name>[a-zA-Z_:][\w:]*)\s*(?P<matchers>\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?'
    r'|\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\}|"(?:[^"\\]|\\.)*"|\d+(?:\.\d+)?(?:e[+-]?\d+)?'
)


def selectors(expr: str) -> list[str]:
    """The vector selectors of a PromQL expression (metric names with their matchers)."""
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]|\boffset\s+\d+[smhdwy]", " ", expr)
    found = []
    for m in _TOKEN.finditer(expr):
        name = m.group("name")
        if not name or name.lower() in _KEYWORDS:
            continue
        if not m.group("matchers") and expr[m.end() :].lstrip().startswith("("):
            continue  # a function call
        found.append(name + (m.group("matchers") or ""))
    return found


def _query(prometheus: str, expr: str) -> list:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, f"{expr}: {r.text}"
    return r.json()["data"]["result"]


def promql_checks(cluster: Cluster) -> dict[str, str]:
    """Every expression of the chart's rules and dashboard, by where it is used (for an alert,
    each series it compares: an alert is quiet on a healthy system)."""
    rules = cluster.json("-n", NAMESPACE, "get", "prometheusrules.monitoring.coreos.com")["items"]
    dashboard = cluster.json("-n", NAMESPACE, "get", "configmap", "-l", "grafana_dashboard=1")["items"]
    assert rules and dashboard
    checks: dict[str, str] = {}
    for rule_obj in rules:
        for group in rule_obj["spec"]["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    checks[f"record {rule['record']}"] = rule["expr"]
                else:
                    for sel in selectors(rule["expr"]):
                        checks[f"alert {rule['alert']}: {sel}"] = sel
    for cm in dashboard:
        for text in cm["data"].values():
            for panel, expr in _dashboard_exprs(json.loads(text)):
                expr = (
                    expr.replace("$__rate_interval", "1m")
                    .replace("$namespace", NAMESPACE)
                    .replace("$role", "champion|challenger")
                )
                checks[f"dashboard {panel!r}: {expr}"] = expr
    return checks


def wait_for_series(prometheus: str, checks: dict[str, str], timeout: float = 180) -> None:
    """Wait until every expression returns series; fail naming those that do not."""
    missing: dict[str, str] = {}

    def all_present() -> bool:
        missing.clear()
        for where, expr in checks.items():
            if not _query(prometheus, expr):
                missing[where] = expr
        return not missing

    try:
        wait_for("every expression returning series", all_present, timeout=timeout, every=10)
    except TimeoutError:
        pytest.fail("expressions without series:\n" + "\n".join(missing))


def test_every_promql_expression_returns_series(cluster: Cluster, release: Release, prometheus: str) -> None:
    # Rejections must exist for the error-ratio series: send invalid requests to both roles.
    canary(cluster, release, "set", "50")
    settle(release, {("champion", "2"), ("challenger", _alias_version(cluster, "challenger"))}, "50/50 split")
    scrape_release(cluster, release)  # the retrain's canary replaced the challenger's pod
    with httpx.Client() as client:
        for _ in range(60):
            client.post(release.infer_url(), json={"inputs": []}, timeout=15)
        # Fraud decisions too (the fraud-rate series count decision="fraud"): transactions of a
        # data set that is half fraud, in batches.
        frame = generate(rows=400, seed=11, fraud_rate=0.5)
        rows = frame[list(FEATURES)].to_numpy(dtype="float32")
        for batch in range(0, len(rows), 20):
            part = rows[batch : batch + 20]
            body = {
                "inputs": [
                    {
                        "name": "features",
                        "shape": list(part.shape),
                        "datatype": "FP32",
                        "data": part.ravel().tolist(),
                    }
                ]
            }
            assert client.post(release.infer_url(), json=body, timeout=15).status_code == 200
    roles(release, 400)
    checks = promql_checks(cluster)
    # The canary analysis pushes its series on its first pass: test_cluster_analysis.py checks them.
    checks = {where: expr for where, expr in checks.items() if "fraud_canary_" not in expr}
    assert len(checks) > 20, checks
    wait_for_series(prometheus, checks)


def test_canary_status_shows_live_numbers(cluster: Cluster, release: Release, prometheus: str) -> None:
    def champion_rate_shown() -> str | None:
        roles(release, 100, threads=2)  # fresh traffic: the rates are over the last 5 minutes
        out = canary(cluster, release, "status", "--prometheus-url", prometheus)
        assert "live (Prometheus)" in out, out
        found = re.search(r"champion\W+(\d[\d.e+-]*)", out.split("live (Prometheus)", 1)[1])
        return out if found and float(found.group(1)) > 0 else None

    wait_for("the champion's request rate in `fraud canary status`", champion_rate_shown, 120, every=5)


def _dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    out = []

    def walk(panels: list) -> None:
        for p in panels:
            out.extend((p.get("title", "?"), t["expr"]) for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dashboard.get("panels", []))
    return out


def test_helm_test_passes(cluster: Cluster, release: Release) -> None:
    out = cluster.helm_("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")
    phases = re.findall(r"^Phase:\s+(\w+)", out, flags=re.MULTILINE)
    assert phases, out
    assert set(phases) == {"Succeeded"}, out
