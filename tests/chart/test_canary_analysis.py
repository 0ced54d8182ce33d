"""`fraud canary analyze | pause | resume | abort` against a real kube-apiserver holding the chart's
objects and RBAC, a real PostgreSQL audit log and MLflow registry, and a Prometheus query endpoint
whose numbers each test sets: the first pass starts in shadow, a small sample holds, a clear error
regression rolls back at once (Event, registry tags), pause and abort, and two passes racing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli import app
from fraudcore import auditdb
from fraudcore.names import STATUS_TAG
from jobs.canary import Canary
from jobs.canary import progress as progress_
from jobs.canary.state import CanaryError
from tests.chart import cluster
from tests.chart.test_canary import MODEL, NAME, ROUTE, Release, apply_release, registry  # noqa: F401
from tests.support import prometheus_endpoint

pytestmark = pytest.mark.chart

EDGES = ("0.005", "0.01", "+Inf")


class Numbers:
    """What the Prometheus endpoint reports per role for the current step (cumulative counts)."""

    def __init__(self) -> None:
        self.requests = {"champion": 0.0, "shadow": 0.0}
        self.errors = {"champion": 0.0, "shadow": 0.0}

    def answer(self, query: str) -> list[dict]:
        versions = {"champion": "3", "shadow": "4"}
        if "fraud_request_seconds_bucket" in query:
            return [
                {"metric": {"role": r, "model_version": versions[r], "le": le}, "value": [0, str(n)]}
                for r, n in self.requests.items()
                for le in EDGES
            ]
        if "fraud_rejected_requests_total" in query:
            return [
                {"metric": {"role": r, "model_version": versions[r]}, "value": [0, str(n)]}
                for r, n in self.errors.items()
            ]
        return [{"metric": {}, "value": [0, str(self.requests["champion"])]}]


@pytest.fixture
def numbers() -> Numbers:
    return Numbers()


@pytest.fixture
def prometheus(numbers: Numbers) -> Iterator[str]:
    with prometheus_endpoint(numbers.answer) as (url, _):
        yield url


@pytest.fixture
def release(
    kube: cluster.Kube,
    control_plane: cluster.ControlPlane,
    render: Callable[..., list[dict]],
    restricted_namespace: str,
    registry: tuple[str, MlflowClient],  # noqa: F811
) -> Release:
    """The chart's canary scenario (champion v3, challenger v4) with the analysis enabled."""
    enabled = (
        "--set",
        "canary.analysis.enabled=true",
        "--set",
        "canary.analysis.prometheusUrl=http://p:9090",
    )
    return apply_release(kube, control_plane, render, restricted_namespace, registry, *enabled)


def scored_in_shadow(dsn: str, transactions: int) -> None:
    """Audit rows of transactions scored alike by the champion (v3) and its shadow copy (v4)."""
    now = datetime.now(UTC)
    rows = [
        (f"t{i}", 0, now, (i % 100) / 100, i % 50 == 0, version, role)
        for i in range(transactions)
        for version, role in (("3", "champion"), ("4", "shadow"))
    ]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {auditdb.TABLE} (request_id, row_index, scored_at, features, score, decision,"
            " model_version, role, latency_s) VALUES (%s, %s, %s, '{}', %s, %s, %s, %s, 0.001)",
            rows,
        )


@pytest.fixture
def fraud(release: Release, prometheus: str, audit_dsn: str) -> Callable[..., tuple[int, str]]:
    """`fraud canary ARGS` in-process with the registry, the audit log and Prometheus configured."""
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        auditdb.ensure_table(conn)

    def run(*args: str, kubeconfig: Path | None = None) -> tuple[int, str]:
        argv = [
            "canary",
            *args,
            "-n",
            release.namespace,
            "--kubeconfig",
            str(kubeconfig or release.kubeconfig),
        ]
        env = {
            "MLFLOW_TRACKING_URI": release.tracking_uri,
            "FRAUD_AUDIT_DSN": audit_dsn,
            "FRAUD_PROMETHEUS_URL": prometheus,
            "FRAUD_CANARY_PLAN": json.dumps(
                {"steps": ["shadow 100", 50], "minMinutes": 0, "minRequests": 100}
            ),
        }
        result = CliRunner().invoke(app, argv, env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return run


def route(release: Release) -> dict:
    return release.kube.get(ROUTE, "HTTPRoute", NAME, release.namespace)


def recorded(release: Release) -> progress_.Progress:
    found = progress_.read(route(release))
    assert found is not None
    return found


def test_the_first_pass_starts_the_challenger_in_shadow(release: Release, fraud: Callable) -> None:
    code, out = fraud("analyze")
    assert code == 0, out
    assert "start: version 4 against champion 3" in out
    rule = route(release)["spec"]["rules"][0]
    assert [r["weight"] for r in rule["backendRefs"]] == [100, 0]
    mirror = rule["filters"][0]["requestMirror"]
    assert mirror["percent"] == 100 and mirror["backendRef"]["name"] == f"{NAME}-challenger-shadow"
    progress = recorded(release)
    assert (progress.challenger_version, progress.step, progress.outcome) == (4, 0, None)
    code, out = fraud("status")
    assert "analysis of version 4: step 1 of 2" in out and "shadow 100 %" in out


def test_a_small_sample_holds_and_moves_nothing(release: Release, fraud: Callable, numbers: Numbers) -> None:
    fraud("analyze")
    numbers.requests |= {"champion": 500, "shadow": 20}
    before = route(release)["spec"]
    code, out = fraud("analyze")
    assert code == 0 and "hold: sample too small: 20 of 100 challenger requests" in out, out
    assert route(release)["spec"] == before
    assert recorded(release).decisions["hold"] == 1


def test_a_clear_error_regression_rolls_back_at_once(
    release: Release,
    fraud: Callable,
    numbers: Numbers,
    registry: tuple[str, MlflowClient],  # noqa: F811
    control_plane: cluster.ControlPlane,
    tmp_path: Path,
) -> None:
    # As the chart's canary ServiceAccount, whose Role must allow every step (Events included).
    token = release.kube.service_account_token(release.namespace, f"{NAME}-canary")
    kubeconfig = control_plane.kubeconfig_for_token(token, tmp_path / "sa.kubeconfig", release.namespace)
    assert fraud("analyze", kubeconfig=kubeconfig)[0] == 0
    numbers.requests |= {"champion": 5000, "shadow": 5000}
    numbers.errors |= {"champion": 5, "shadow": 1500}
    code, out = fraud("analyze", kubeconfig=kubeconfig)
    assert code == 0, out
    assert "rollback: error ratio failed" in out
    rule = route(release)["spec"]["rules"][0]
    assert "filters" not in rule and [r["weight"] for r in rule["backendRefs"]] == [100, 0]
    assert recorded(release).outcome == "rolled back"
    tags = registry[1].get_model_version(MODEL, "4").tags
    assert tags[STATUS_TAG] == "rejected" and tags["canary_analysis"].startswith("rollback at step 1")
    events = release.kube.resource("v1", "Event").get(namespace=release.namespace).items
    assert {"CanaryStart", "CanaryRollback"} <= {e.reason for e in events}
    # The analysis of version 4 has ended: later passes leave everything as it is.
    code, out = fraud("analyze", kubeconfig=kubeconfig)
    assert "version 4 was rolled back" in out


def test_pause_resume_and_abort(release: Release, fraud: Callable, numbers: Numbers, audit_dsn: str) -> None:
    fraud("analyze")
    scored_in_shadow(audit_dsn, 300)
    assert fraud("pause")[0] == 0
    numbers.requests |= {"champion": 5000, "shadow": 5000}
    code, out = fraud("analyze")
    assert "paused at step 1 of 2" in out and recorded(release).step == 0
    fraud("resume")
    code, out = fraud("analyze")
    assert "advance" in out and recorded(release).step == 1, out
    assert [r["weight"] for r in route(release)["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    code, out = fraud("abort", "--reason", "the fraud team wants more time")
    assert code == 0 and "aborted" in out
    assert [r["weight"] for r in route(release)["spec"]["rules"][0]["backendRefs"]] == [100, 0]
    assert recorded(release).outcome == "aborted"


def test_two_passes_cannot_both_move_the_canary(release: Release, fraud: Callable) -> None:
    fraud("analyze")
    stale = route(release)
    fraud("pause")  # someone else wrote the progress meanwhile
    from kubernetes.client import CustomObjectsApi

    canary = Canary(CustomObjectsApi(release.kube.api), release.namespace, NAME)
    later = progress_.read(stale)
    assert later is not None
    with pytest.raises(CanaryError, match="changed meanwhile"):
        progress_.write(canary.objects, stale, later.decided("advance", "racing", datetime.now(UTC)))
    assert recorded(release).paused


def test_an_unreadable_progress_is_one_clear_error(release: Release, fraud: Callable) -> None:
    key = progress_.ANNOTATION.replace("/", "~1")
    release.kube.resource(ROUTE, "HTTPRoute").patch(
        name=NAME, namespace=release.namespace, content_type="application/json-patch+json",
        body=[{"op": "add", "path": f"/metadata/annotations/{key}", "value": "{not json"}],
    )  # fmt: skip
    with pytest.raises(CanaryError, match=r"is not the analysis.s progress .* remove it to start over"):
        fraud("analyze")
