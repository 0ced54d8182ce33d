"""Mirrored requests over real HTTP: a Host ending in `-shadow` (before any port, as Envoy sends the
copies it mirrors) is answered as usual and recorded under the role `shadow`, apart from the
predictor's own traffic, and kept out of KServe's latency histogram."""

import time
from pathlib import Path

import httpx
import pytest

from model_server.routes import is_shadow
from tests.conftest import TrainedStore
from tests.model_server.test_server import (
    MODEL,
    ROW,
    audited_rows,
    launch,
    metric_samples,
    sample,
    server_env,
)
from tests.support import running


@pytest.mark.parametrize(
    ("host", "shadow"),
    [
        (b"fraud.example.com-shadow", True),
        (b"fraud.example.com-shadow:8080", True),
        (b"10.0.0.7-shadow:80", True),
        (b"[::1]-shadow:80", True),
        (b"fraud.example.com", False),
        (b"fraud.example.com:8080", False),
        (b"fraud-shadow.example.com", False),
        (b"", False),
    ],
)
def test_shadow_hosts(host: bytes, shadow: bool) -> None:
    assert is_shadow(host) is shadow


def test_mirrored_requests_are_recorded_as_shadow(
    trained_store: TrainedStore, audit_dsn: str, tmp_path: Path
) -> None:
    env = server_env(
        trained_store.settings.home,
        FRAUD_MODEL_URI=f"models:/{MODEL}@challenger",
        FRAUD_MODEL_ROLE="challenger",
        FRAUD_AUDIT_DSN=audit_dsn,
    )
    server = launch(tmp_path, env)
    with running(server):
        server.wait()
        v2, v1 = f"{server.url}/v2/models/{MODEL}/infer", f"{server.url}/v1/models/{MODEL}:predict"
        body = {"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP32", "data": ROW * 2}]}
        replies = [
            httpx.post(v2, json=body, headers={"x-request-id": "client"}),
            httpx.post(
                v2, json=body, headers={"x-request-id": "copy-v2", "host": "fraud.example.com-shadow"}
            ),
            httpx.post(
                v1, json={"instances": [ROW]}, headers={"x-request-id": "copy-v1", "host": "gw-shadow:8080"}
            ),
        ]
        refused = httpx.post(v2, content=b"nope", headers={"host": "fraud.example.com-shadow"})
        assert [r.status_code for r in replies] == [200, 200, 200] and refused.status_code == 400
        assert {r.headers["x-model-role"] for r in replies} == {"challenger"}, "responses name the predictor"
        samples = metric_samples(server.url)
        deadline = time.monotonic() + 30
        while audited_rows(audit_dsn, "copy-v1") != [("2", "shadow")]:
            assert time.monotonic() < deadline, audited_rows(audit_dsn, "copy-v1")
            time.sleep(0.2)
        records = {r.get("request_id"): r for r in server.log_records() if "status" in r}

    def count(name: str, role: str, **labels: str) -> float:
        return sample(samples, name, role=role, model_version="2", **labels)

    assert (count("fraud_predictions_total", "shadow"), count("fraud_predictions_total", "challenger")) == (
        3,
        2,
    )
    assert (count("fraud_batch_size_count", "shadow"), count("fraud_batch_size_count", "challenger")) == (
        2,
        1,
    )
    assert (count("fraud_score_count", "shadow"), count("fraud_request_seconds_count", "shadow")) == (3, 2)
    assert count("fraud_request_seconds_count", "challenger") == 1
    assert count("fraud_request_seconds_bucket", "shadow", le="10.0") == 2
    assert count("fraud_rejected_requests_total", "shadow") == 1
    assert count("fraud_rejected_requests_total", "challenger") == 0
    assert sample(samples, "request_predict_seconds_count", model_name=MODEL) == 1, "only the client's"
    assert not [lab for n, lab, _ in samples if n == "fraud_model_info" and lab["role"] == "shadow"]
    assert audited_rows(audit_dsn, "client") == [("2", "challenger")] * 2
    assert audited_rows(audit_dsn, "copy-v2") == [("2", "shadow")] * 2
    assert {k: records[k]["role"] for k in ("client", "copy-v2", "copy-v1")} == {
        "client": "challenger",
        "copy-v2": "shadow",
        "copy-v1": "shadow",
    }
