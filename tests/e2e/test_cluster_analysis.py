"""The automatic canary analysis on the cluster, under constant load through the Gateway: passes
are Jobs cut from the chart's CronJob (as the canary ServiceAccount), on a compressed plan. With too
little traffic it holds; a good challenger goes from shadow to all the traffic by itself; one that
answers with errors and one that flags far more are rolled back by themselves — and no client
request fails. Runs after test_cluster.py, whose retrained version is the good challenger."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import MODEL, NAMESPACE, RELEASE, ROOT, Release, run_job, scrape_release, wait_job
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.test_cluster import (
    Load,
    _alias_version,
    _mlflow,
    _query,
    _versions,
    canary,
    promql_checks,
    settle,
    wait_for_series,
)
from training.synthetic import FEATURES, generate

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

ANNOTATION = "fraud-detection.io/canary-analysis"
PLAN = {
    "steps": ["shadow 100", 50],
    "minMinutes": 0.5,
    "maxMinutes": 8,
    "minRequests": 150,
    "alpha": 0.05,
    # Both predictors share the node's two cores with the load and the cluster: their latency
    # tails are the machine's, not the models' (the bad challengers below fail on other checks).
    "slowMargin": 0.2,
    # Champion and retrained challenger are near twins; the bad ones below differ by far more.
    "flagRatio": 3,
    "labelDelayHours": 0,
    "minFrauds": 10,
    "labelWaitHours": 1,
    "recallMargin": 0.5,
    "precisionMargin": 0.5,
}


def transactions(rows: int = 3000, seed: int = 11) -> list[dict]:
    """Single-row v2 bodies of varied synthetic transactions (behaviour checks need real spread)."""
    frame = generate(rows=rows, seed=seed)
    values = frame[list(FEATURES)].to_numpy(dtype=float)
    return [
        {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": row.tolist()}]}
        for row in values
    ]


@pytest.fixture(scope="module")
def analysis(cluster: Cluster, release: Release) -> Callable[[], dict]:
    """The release with the analysis enabled (its schedule suspended: the test cuts each pass from
    the CronJob); returns a function running one pass and giving the progress it recorded."""
    values = {
        "enabled": True,
        "suspend": True,
        "prometheusUrl": "http://prometheus.monitoring.svc:9090",
        "plan": PLAN,
    }
    cluster.helm_(
        "upgrade", RELEASE, str(ROOT / "charts/fraud-detection"), "--reuse-values", "-n", NAMESPACE,
        "--set-json", f"canary.analysis={json.dumps(values)}",
    )  # fmt: skip
    count = iter(range(1000))

    def one_pass() -> dict:
        job = f"{release.name}-analysis-{next(count)}"
        cluster.kubectl(
            "-n", NAMESPACE, "create", "job", f"--from=cronjob/{release.name}-canary-analysis", job
        )
        wait_job(cluster, job, timeout=900)
        logger.info("%s: %s", job, cluster.kubectl("-n", NAMESPACE, "logs", f"job/{job}", check=False))
        cluster.kubectl("-n", NAMESPACE, "delete", "job", job, "--wait=false")
        return progress(cluster, release)

    return one_pass


def progress(cluster: Cluster, release: Release) -> dict:
    route = cluster.json("-n", NAMESPACE, "get", "httproute", release.name)
    return json.loads((route["metadata"].get("annotations") or {}).get(ANNOTATION, "{}"))


def route_rule(cluster: Cluster, release: Release) -> dict:
    return cluster.json("-n", NAMESPACE, "get", "httproute", release.name)["spec"]["rules"][0]


def until(one_pass: Callable[[], dict], done: Callable[[dict], bool], what: str, passes: int = 12) -> dict:
    """Run passes (about 30 s apart: the plan's minimum step) until `done`."""
    for _ in range(passes):
        state = one_pass()
        if done(state):
            return state
        time.sleep(15)
    raise AssertionError(f"{what}: not after {passes} passes; last decisions {state.get('history', [])[-3:]}")


def point_challenger(cluster: Cluster, release: Release, version: int) -> None:
    """The challenger at `version` with no traffic, Ready, and scraped by Prometheus."""
    canary(cluster, release, "set", "0", "--challenger-version", str(version))
    cluster.kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=Ready", f"inferenceservice/{release.name}-challenger",
        "--timeout=600s", timeout=630,
    )  # fmt: skip
    wait_for(
        "the challenger's new pod alone",
        lambda: (
            len(
                cluster.json("-n", NAMESPACE, "get", "pods", "-l", "fraud-detection.io/role=challenger")[
                    "items"
                ]
            )
            == 1
        ),
        timeout=300,
    )
    scrape_release(cluster, release)


def labelled_traffic(cluster: Cluster, release: Release, rows: int) -> None:
    """Labelled transactions through the Gateway (so the mirror copies them too), then their labels."""
    gateway = cluster.json(
        "-n", "envoy-gateway-system", "get", "service", "-l",
        "gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway",
    )["items"][0]["metadata"]["name"]  # fmt: skip
    feed = (
        f"fraud data generate --out /tmp/feed.csv --rows {rows} --seed 23"
        f" && fraud traffic send /tmp/feed.csv --url http://{gateway}.envoy-gateway-system.svc"
        " --batch 50 --request-prefix analysis --labels-out /tmp/labels.csv"
        " && fraud labels ingest /tmp/labels.csv"
    )
    run_job(cluster, release.name, "labels-analysis", feed, timeout=900)


def test_too_little_traffic_holds_then_a_good_challenger_is_promoted_by_itself(
    cluster: Cluster, release: Release, analysis: Callable[[], dict]
) -> None:
    good = int(_alias_version(cluster, "challenger"))  # retrained by test_cluster.py, passed the gate
    point_challenger(cluster, release, good)
    started = analysis()
    assert started["challenger_version"] == good and started["step"] == 0
    mirror = route_rule(cluster, release)["filters"][0]["requestMirror"]
    assert mirror["percent"] == 100 and mirror["backendRef"]["name"].endswith("-challenger-shadow")
    time.sleep(35)
    held = analysis()
    assert held["history"][-1]["action"] == "hold", held["history"]
    assert not held.get("outcome") and held["step"] == 0

    with Load(release, bodies=transactions()) as load:
        labelled_traffic(cluster, release, rows=20_000)
        advanced = until(analysis, lambda p: p["step"] == 1 or bool(p.get("outcome")), "advance to 50 %")
        assert not advanced.get("outcome"), advanced["history"]
        settle(release, {("champion", str(advanced["champion_version"])), ("challenger", str(good))}, "50/50")
        promoted = until(analysis, lambda p: bool(p.get("outcome")), "promotion")
        settle(release, {("champion", str(good))}, "the champion serving the promoted version", timeout=600)
    assert promoted["outcome"] == "promoted", promoted["history"]
    assert not load.failures, f"{len(load.failures)} of {load.total()} failed: {load.failures[:3]}"
    assert _alias_version(cluster, "champion") == str(good)
    assert "filters" not in route_rule(cluster, release)
    events = cluster.json(
        "-n", NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={release.name}-challenger"
    )
    assert {"CanaryStart", "CanaryAdvance", "CanaryPromote"} <= {e["reason"] for e in events["items"]}
    tags = _mlflow(cluster, f"/api/2.0/mlflow/model-versions/get?name={MODEL}&version={good}")[
        "model_version"
    ]["tags"]
    assert any(t["key"] == "canary_analysis" and t["value"].startswith("promote") for t in tags), tags


def _rolled_back(
    cluster: Cluster, release: Release, analysis: Callable[[], dict], version: int, check: str
) -> None:
    """The analysis rolls `version` back by itself, `check` among the checks that failed (a bad
    model may break more than one: the one flagging everything is also slower, as it explains
    every flagged transaction for the audit log)."""
    point_challenger(cluster, release, version)
    with Load(release, bodies=transactions(seed=12)) as load:
        assert analysis()["step"] == 0
        time.sleep(35)
        ended = until(analysis, lambda p: bool(p.get("outcome")), f"a decision on version {version}")
    assert ended["outcome"] == "rolled back", ended["history"]
    assert not load.failures, f"{len(load.failures)} of {load.total()} failed: {load.failures[:3]}"
    rule = route_rule(cluster, release)
    assert "filters" not in rule and [r["weight"] for r in rule["backendRefs"]] == [100, 0]
    failed = {c["name"] for c in ended["checks"] if c["verdict"] == "fail"}
    assert check in failed, (failed, ended["history"][-1])


def test_a_challenger_that_answers_with_errors_is_rolled_back_by_itself(
    cluster: Cluster, release: Release, analysis: Callable[[], dict]
) -> None:
    # The PaySim version test_cluster.py registered (and the gate refused): it rejects every
    # request in the champion's schema — in shadow, where no client sees its answers.
    _rolled_back(cluster, release, analysis, max(_versions(cluster)), "error ratio")


def test_a_challenger_that_flags_far_more_is_rolled_back_by_itself(
    cluster: Cluster, release: Release, analysis: Callable[[], dict]
) -> None:
    # A missed fraud priced 10,000 times a false alarm: the threshold drops until almost everything
    # suspicious is flagged. The gate may refuse it (exit 3); it is registered either way.
    train = (
        "FRAUD_COST_MISSED_FRAUD=50000 fraud train --model xgboost --rows 60000 --rounds 60;"
        " code=$?; [ $code -eq 0 ] || [ $code -eq 3 ]"
    )
    run_job(cluster, release.name, "flags-more", train, timeout=900)
    _rolled_back(cluster, release, analysis, max(_versions(cluster)), "flag rate")


def test_the_analysis_feeds_the_dashboard_row_and_the_rollback_alert(
    cluster: Cluster, release: Release, prometheus: str
) -> None:
    # The passes above pushed their series (the canary SA's Jobs, through the Pushgateway).
    checks = {where: expr for where, expr in promql_checks(cluster).items() if "fraud_canary_" in expr}
    assert len(checks) >= 5, checks
    wait_for_series(prometheus, checks)
    rollbacks = _query(prometheus, 'max(fraud_canary_decisions_total{decision="rollback"})')
    assert float(rollbacks[0]["value"][1]) >= 1, rollbacks
