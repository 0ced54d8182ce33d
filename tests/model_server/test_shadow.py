"""Mirrored requests over real HTTP: a request on the shadow port (where the chart's Service sends
the route's mirrored copies) is answered as usual and recorded under the role `shadow`, apart from
the predictor's own traffic, and kept out of KServe's latency histogram; the server stops cleanly
with both ports open."""

import signal
import time
from pathlib import Path

import httpx

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
from tests.support import free_port, running


def test_mirrored_requests_are_recorded_as_shadow(
    trained_store: TrainedStore, audit_dsn: str, tmp_path: Path
) -> None:
    env = server_env(
        trained_store.settings.home,
        FRAUD_MODEL_URI=f"models:/{MODEL}@challenger",
        FRAUD_MODEL_ROLE="challenger",
        FRAUD_AUDIT_DSN=audit_dsn,
        FRAUD_SHADOW_PORT=str(shadow_port := free_port()),
    )
    server = launch(tmp_path, env)
    copies = f"http://127.0.0.1:{shadow_port}"
    with running(server):
        server.wait()
        v2 = f"{server.url}/v2/models/{MODEL}/infer"
        v2_copy, v1_copy = f"{copies}/v2/models/{MODEL}/infer", f"{copies}/v1/models/{MODEL}:predict"
        body = {"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP32", "data": ROW * 2}]}
        replies = [
            httpx.post(v2, json=body, headers={"x-request-id": "client"}),
            httpx.post(v2_copy, json=body, headers={"x-request-id": "copy-v2"}),
            httpx.post(v1_copy, json={"instances": [ROW]}, headers={"x-request-id": "copy-v1"}),
        ]
        refused = httpx.post(v2_copy, content=b"nope")
        assert httpx.get(f"{copies}/v2/health/ready").status_code == 200
        assert [r.status_code for r in replies] == [200, 200, 200] and refused.status_code == 400
        assert {r.headers["x-model-role"] for r in replies} == {"challenger"}, "responses name the predictor"
        samples = metric_samples(server.url)
        deadline = time.monotonic() + 30
        while audited_rows(audit_dsn, "copy-v1") != [("2", "shadow")]:
            assert time.monotonic() < deadline, audited_rows(audit_dsn, "copy-v1")
            time.sleep(0.2)
        records = {r.get("request_id"): r for r in server.log_records() if "status" in r}
        server.process.send_signal(signal.SIGTERM)  # as Kubernetes stops a pod
        assert server.process.wait(timeout=20) is not None, "both listeners stop on SIGTERM"

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
