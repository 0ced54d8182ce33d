"""The predictor as a real process over HTTP: v2 (tritonclient, kserve's client, raw), v1, errors,
readiness, metrics, request ids, the shared token, the registry-outage cache and `fraud serve`."""

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from prometheus_client.parser import text_string_to_metric_families

from fraudcore import auditdb
from fraudcore.registry import Registry
from tests.conftest import TrainedStore
from tests.support import ServerProcess, free_port, running, start_server
from training.synthetic import FEATURES

MODEL = "fraud-detector"
MAX_ROWS = 500
TOKEN = "s3cret-token"
ROOT = Path(__file__).resolve().parents[2]
"""The checkout under test."""


def server_env(home: Path, **env: str) -> dict[str, str]:
    """The environment of a predictor using the store under `home`, nothing of the caller's, and
    the code of this checkout (an editable install may point at another work tree)."""
    # Bytecode caching stays on for the servers: each one imports MLflow and KServe afresh.
    skip = ("FRAUD_", "MLFLOW_", "PYTHONDONTWRITEBYTECODE")
    base = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    path = os.pathsep.join(filter(None, (str(ROOT), base.get("PYTHONPATH"))))
    return {**base, "PYTHONPATH": path, "FRAUD_HOME": str(home), **env}


def launch(workdir: Path, env: dict[str, str], command: list[str] | None = None) -> ServerProcess:
    """Start `python -m model_server` (or `command`, with {port} filled in) in the background."""
    args = command or [sys.executable, "-m", "model_server", "--model_name", MODEL, "--http_port", "{port}"]
    return start_server(args, workdir, env, probe="/v2/health/ready")


@pytest.fixture(scope="module")
def others(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """Servers started alongside the main one to share the start-up wait: a model that cannot be
    loaded (fail-fast off, and on) and the logistic champion run by `fraud serve`."""
    workdir = tmp_path_factory.mktemp("others")
    fraud = str(Path(sys.executable).with_name("fraud"))
    serve = [fraud, "serve", "--model-uri", f"models:/{MODEL}/1", "--port", "{port}", "--role", "champion"]
    home = trained_store.settings.home
    servers = {
        "broken": launch(workdir, server_env(home, FRAUD_MODEL_URI=str(workdir / "missing"),
                                             FRAUD_LOAD_RETRY_SECONDS="0.2")),
        "fail_fast": launch(workdir, server_env(home, FRAUD_MODEL_URI=f"models:/{MODEL}/99",
                                                FRAUD_FAIL_FAST="true")),
        "champion": launch(workdir, server_env(home), serve),
    }  # fmt: skip
    with running(*servers.values()):
        yield servers


@pytest.fixture(scope="module")
def server(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory, others: dict[str, ServerProcess]
) -> Iterator[ServerProcess]:
    """The XGBoost challenger, named by alias, with a small batch limit."""
    with challenger(
        trained_store, tmp_path_factory.mktemp("predictor"), f"models:/{MODEL}@challenger"
    ) as main:
        yield main


@contextmanager
def challenger(store: TrainedStore, workdir: Path, model_uri: str) -> Iterator[ServerProcess]:
    """A ready predictor serving `model_uri` as the challenger, at most MAX_ROWS rows per request."""
    env = server_env(
        store.settings.home,
        FRAUD_MODEL_URI=model_uri,
        FRAUD_MODEL_ROLE="challenger",
        FRAUD_MAX_BATCH_ROWS=str(MAX_ROWS),
    )
    main = launch(workdir, env)
    with running(main):
        yield main.wait()


@pytest.fixture(scope="module")
def expected(trained_store: TrainedStore) -> tuple[np.ndarray, Any]:
    """Rows from the data set and the challenger bundle that should score them."""
    x = trained_store.frame[list(FEATURES)].to_numpy(np.float32)[:300]
    bundle = (
        Registry(trained_store.settings).load(f"models:/{MODEL}/{trained_store.challenger.version}").bundle
    )
    return x, bundle


def infer_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}], **extra}  # fmt: skip


def columnar_body(x: np.ndarray) -> dict[str, Any]:
    columns = [x[:, i].astype(np.float64).tolist() for i in range(x.shape[1])]
    return {"inputs": [{"name": f, "shape": [len(x)], "datatype": "FP64", "data": c}
                       for f, c in zip(FEATURES, columns, strict=True)]}  # fmt: skip


def metric_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics").text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def sample(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


# --- scoring ---------------------------------------------------------------------------------------


def test_tritonclient_json_and_binary(server: ServerProcess, expected: tuple[np.ndarray, Any]) -> None:
    x, bundle = expected
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready(MODEL)
    for binary in (False, True):
        tensor = triton.InferInput("features", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput(n, binary_data=binary) for n in ("fraud_probability", "is_fraud")
        ]
        result = client.infer(MODEL, [tensor], outputs=outputs, request_id=f"triton-{binary}")
        scores = result.as_numpy("fraud_probability")
        assert scores.dtype == np.float32 and scores.shape == (len(x),)
        np.testing.assert_allclose(scores, bundle.scorer.predict_proba(x), atol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("is_fraud"), scores >= bundle.card.threshold)
        response = result.get_response()
        assert response["model_version"] == "2" and response["id"] == f"triton-{binary}"
    client.close()


def test_single_rows_match_the_model(server: ServerProcess, expected: tuple[np.ndarray, Any]) -> None:
    """Single rows take the ONNX Runtime path; scores match XGBoost to 1e-6 (concurrently, so batched)."""
    x, bundle = expected

    async def score_all() -> list[float]:
        async with httpx.AsyncClient(base_url=server.url) as client:
            replies = await asyncio.gather(
                *(client.post(f"/v2/models/{MODEL}/infer", json=infer_body(x[i : i + 1])) for i in range(64))
            )
        return [r.json()["outputs"][0]["data"][0] for r in replies]

    np.testing.assert_allclose(asyncio.run(score_all()), bundle.scorer.predict_proba(x[:64]), atol=1e-6)


def test_kserve_client_matrix_columns_and_binary(
    server: ServerProcess, expected: tuple[np.ndarray, Any]
) -> None:
    x, bundle = expected
    want = bundle.scorer.predict_proba(x[:20])

    async def run() -> list[np.ndarray]:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        matrix = InferInput("features", [20, 30], "FP32")
        matrix.set_data_from_numpy(x[:20], binary_data=False)
        binary = InferInput("features", [20, 30], "FP64")
        binary.set_data_from_numpy(x[:20].astype(np.float64), binary_data=True)
        columns = []
        for i, feature in enumerate(FEATURES):
            column = InferInput(feature, [20], "FP32")
            column.set_data_from_numpy(np.ascontiguousarray(x[:20, i]), binary_data=False)
            columns.append(column)
        results = []
        for inputs in ([matrix], [binary], columns):
            request = InferRequest(model_name=MODEL, infer_inputs=inputs)
            response = await client.infer(server.url, request, model_name=MODEL)
            assert response.model_name == MODEL
            results.append(response.outputs[0].as_numpy())
        await client.close()
        return results

    for scores in asyncio.run(run()):
        np.testing.assert_allclose(scores, want, atol=1e-6)


def test_raw_columnar_fp64(server: ServerProcess, expected: tuple[np.ndarray, Any]) -> None:
    x, bundle = expected
    reply = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=columnar_body(x[:7]))
    assert reply.status_code == 200
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["is_fraud"]["datatype"] == "BOOL" and outputs["fraud_probability"]["shape"] == [7]
    np.testing.assert_allclose(
        outputs["fraud_probability"]["data"], bundle.scorer.predict_proba(x[:7]), atol=1e-6
    )


def test_v1_dicts_and_lists(server: ServerProcess, expected: tuple[np.ndarray, Any]) -> None:
    x, bundle = expected
    want = bundle.scorer.predict_proba(x[:3])

    async def run() -> list[dict[str, Any]]:
        client = InferenceRESTClient(RESTConfig(protocol="v1"))
        dicts = {"instances": [dict(zip(FEATURES, row.tolist(), strict=True)) for row in x[:3]]}
        lists = {"instances": x[:3].tolist()}
        replies = [await client.infer(server.url, body, model_name=MODEL) for body in (dicts, lists)]
        await client.close()
        return replies

    for reply in asyncio.run(run()):
        assert reply["model_version"] == "2"
        got = [p["fraud_probability"] for p in reply["predictions"]]
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert [p["is_fraud"] for p in reply["predictions"]] == (want >= bundle.card.threshold).tolist()


def test_headers_and_request_id(server: ServerProcess) -> None:
    body = infer_body(np.zeros((1, 30), np.float32))
    echoed = httpx.post(
        f"{server.url}/v2/models/{MODEL}/infer", json=body, headers={"x-request-id": "trace-42"}
    )
    assert echoed.headers["x-request-id"] == "trace-42" and echoed.json()["id"] == "trace-42"
    assert echoed.headers["x-model-version"] == "2" and echoed.headers["x-model-role"] == "challenger"
    fresh = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=body)
    assert len(fresh.headers["x-request-id"]) == 32 and fresh.json()["id"] == fresh.headers["x-request-id"]
    for path in ("/v2/health/live", "/metrics", f"/v2/models/{MODEL}/ready"):
        assert httpx.get(server.url + path, headers={"x-request-id": "p"}).headers["x-request-id"] == "p"
    logged = [r for r in server.log_records() if r.get("request_id") == "trace-42"]
    assert (
        logged and logged[0]["status"] == 200 and logged[0]["rows"] == 1 and logged[0]["role"] == "challenger"
    )


def test_model_metadata_and_readiness(server: ServerProcess, trained_store: TrainedStore) -> None:
    meta = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
    assert meta["versions"] == ["2"] and meta["platform"] == "xgboost"
    params = meta["parameters"]
    assert params["role"] == "challenger" and params["model_uri"] == f"models:/{MODEL}@challenger"
    assert params["metrics"]["roc_auc"] == pytest.approx(trained_store.challenger.result.candidate["roc_auc"])
    assert 0 < params["threshold"] < 1 and params["from_cache"] is False
    assert httpx.get(f"{server.url}/v2/health/ready").json()["ready"] is True
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/nope/ready").status_code == 404
    assert httpx.get(f"{server.url}/v2/models/nope").status_code == 404


# --- client mistakes -------------------------------------------------------------------------------

ROW = [0.5] * 30
NAN_ROW = np.array([[np.nan, *ROW[1:]]], np.float32)


def _columns_without(name: str) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": f, "shape": [1], "datatype": "FP32", "data": [0.0]} for f in FEATURES if f != name
        ]
    }


ERRORS: list[tuple[str, Any, int, str, str]] = [
    ("bad json", b'{"inputs": [', 400, "not valid JSON", "bad_json"),
    ("no inputs", {"inputs": []}, 400, "non-empty list", "invalid_input"),
    ("wrong shape", {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP32", "data": ROW[:29]}]}, 400,
     "expected [N, 30]", "invalid_input"),
    ("wrong datatype", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["1"] * 30}]},
     400, "datatype BYTES; the [N, 30] tensor takes numbers", "invalid_input"),
    ("unknown datatype", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP8", "data": [1] * 30}]},
     400, "datatype 'FP8'; expected one of FP32", "invalid_input"),
    ("value count", {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP32", "data": ROW}]}, 400,
     "has 30 values but shape [2, 30] needs 60", "invalid_input"),
    ("not numbers", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": ["a"] * 30}]},
     400, "numbers only", "invalid_input"),
    ("overflow", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [1e39, *ROW[1:]]}]},
     400, "non-finite value inf in row 0, feature Time", "invalid_input"),
    ("empty batch", {"inputs": [{"name": "x", "shape": [0, 30], "datatype": "FP32", "data": []}]}, 400,
     "empty batch", "invalid_input"),
    ("too many rows", {"inputs": [{"name": "x", "shape": [MAX_ROWS + 1, 30], "datatype": "FP32",
                                   "data": ROW * (MAX_ROWS + 1)}]},
     413, f"limit of {MAX_ROWS}", "batch_too_large"),
    ("missing feature", _columns_without("V7"), 400, "missing feature(s): V7", "invalid_input"),
    ("extra feature", {"inputs": [*_columns_without("")["inputs"], {"name": "Colour", "shape": [1],
                                                                   "datatype": "FP32", "data": [1.0]}]}, 400,
     "unknown input(s) Colour", "invalid_input"),
    ("ragged columns", {"inputs": [{"name": f, "shape": [1 if f != "V3" else 2], "datatype": "FP32",
                                    "data": [0.0] * (1 if f != "V3" else 2)} for f in FEATURES]}, 400,
     "input 'V3' has shape [2]", "invalid_input"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "message", "reason"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_v2_client_mistakes_get_4xx(
    server: ServerProcess, body: Any, status: int, message: str, reason: str
) -> None:
    before = sample(metric_samples(server.url), "fraud_rejected_requests_total", reason=reason)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", content=content)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert reply.headers["x-request-id"]
    after = sample(
        metric_samples(server.url), "fraud_rejected_requests_total", reason=reason, role="challenger"
    )
    assert after == before + 1


def test_binary_nan_and_bad_sizes(server: ServerProcess) -> None:
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 120}}]}).encode()  # fmt: skip
    url = f"{server.url}/v2/models/{MODEL}/infer"
    nan = httpx.post(
        url, content=header + NAN_ROW.tobytes(), headers={"inference-header-content-length": str(len(header))}
    )
    assert nan.status_code == 400 and "row 0 of required feature Time" in nan.json()["error"]
    short = httpx.post(
        url, content=header + b"\0" * 60, headers={"inference-header-content-length": str(len(header))}
    )
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]
    bad_length = httpx.post(url, content=header, headers={"inference-header-content-length": "many"})
    assert bad_length.status_code == 400
    huge = httpx.post(url, content=b" " * 600_000)  # more bytes than MAX_ROWS rows can take: not even read
    assert huge.status_code == 413 and "request body of 600000 bytes" in huge.json()["error"]


def test_wrong_model_name_and_v1_mistakes(server: ServerProcess) -> None:
    wrong = httpx.post(f"{server.url}/v2/models/other/infer", json=infer_body(np.zeros((1, 30), np.float32)))
    assert wrong.status_code == 404 and "'other' is not served here" in wrong.json()["error"]
    v1 = f"{server.url}/v1/models/{MODEL}:predict"
    missing = {"instances": [{f: 0.0 for f in FEATURES if f != "V3"}]}
    assert "instance 0: missing feature(s) V3" in httpx.post(v1, json=missing).json()["error"]
    short = httpx.post(v1, json={"instances": [[1.0, 2.0]]})
    assert short.status_code == 400 and "30 values" in short.json()["error"]
    assert httpx.post(v1, json={"rows": []}).status_code == 400
    assert httpx.post(v1, content=b"nope").status_code == 400
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


# --- metrics ---------------------------------------------------------------------------------------


def test_metrics(server: ServerProcess, expected: tuple[np.ndarray, Any]) -> None:
    x, bundle = expected
    before = metric_samples(server.url)
    reply = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=infer_body(x[:100]))
    decisions = np.asarray(reply.json()["outputs"][1]["data"])
    after = metric_samples(server.url)
    labels = {"model_version": "2", "role": "challenger"}

    def delta(name: str, **extra: str) -> float:
        return sample(after, name, **labels, **extra) - sample(before, name, **labels, **extra)

    assert delta("fraud_predictions_total", decision="fraud") == decisions.sum()
    assert delta("fraud_predictions_total", decision="legit") == 100 - decisions.sum()
    assert delta("fraud_score_count") == 100 and delta("fraud_score_bucket", le="+Inf") == 100
    assert delta("fraud_batch_size_count") == 1 and delta("fraud_batch_size_bucket", le="128.0") == 1
    assert delta("fraud_batch_size_bucket", le="64.0") == 0
    info = [lab for n, lab, v in after if n == "fraud_model_info" and v == 1]
    assert info == [{**labels, "kind": "xgboost", "threshold": f"{bundle.card.threshold:.6g}"}]
    assert sample(after, "request_predict_seconds_count", model_name=MODEL) > sample(
        before, "request_predict_seconds_count", model_name=MODEL
    )
    assert not [lab for n, lab, _ in after if n.startswith("fraud_") and lab.get("model_version") == "none"]


# --- other servers: token + registry outage, not ready, fail fast, `fraud serve` -------------------


def test_cache_fallback_token_and_audit(
    server: ServerProcess,
    trained_store: TrainedStore,
    tmp_path: Path,
    expected: tuple[np.ndarray, Any],
    audit_dsn: str,
) -> None:
    """After a first run cached the model, a restart with MLflow unreachable serves the cached copy;
    the shared token guards the model routes; every scored row reaches the audit table."""
    env = server_env(
        trained_store.settings.home,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
        FRAUD_MODEL_URI=f"models:/{MODEL}@challenger",
        FRAUD_MODEL_ROLE="challenger",
        FRAUD_API_TOKEN=TOKEN,
        FRAUD_AUDIT_DSN=audit_dsn,
    )
    x, bundle = expected
    auth = {"Authorization": f"Bearer {TOKEN}"}
    offline = launch(tmp_path, env)
    with running(offline):
        offline.wait()
        url = f"{offline.url}/v2/models/{MODEL}/infer"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = httpx.post(url, json=infer_body(x[:2]), headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert refused.headers["x-request-id"]
        assert httpx.get(f"{offline.url}/v2/models/{MODEL}").status_code == 401
        reply = httpx.post(url, json=infer_body(x[:2]), headers={**auth, "x-request-id": "audited"})
        assert reply.status_code == 200 and reply.headers["x-model-version"] == "2"
        np.testing.assert_allclose(
            reply.json()["outputs"][0]["data"], bundle.scorer.predict_proba(x[:2]), atol=1e-6
        )
        assert httpx.get(f"{offline.url}/v2/models/{MODEL}", headers=auth).json()["parameters"]["from_cache"]
        samples = metric_samples(offline.url)  # health and metrics need no token
        assert sample(samples, "fraud_rejected_requests_total", reason="unauthorized") == 4
        assert any("cached copy" in r["message"] for r in offline.log_records())
        deadline = time.monotonic() + 30
        while (rows := audited_rows(audit_dsn, "audited")) != [("2", "challenger")] * 2:
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)


def audited_rows(dsn: str, request_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (auditdb.TABLE,)).fetchone() == (None,):
            return []
        query = f"SELECT model_version, role FROM {auditdb.TABLE} WHERE request_id = %s ORDER BY row_index"
        return [(str(v), str(r)) for v, r in conn.execute(query, (request_id,)).fetchall()]


def test_model_that_fails_to_load_is_not_ready(others: dict[str, ServerProcess]) -> None:
    broken = others["broken"].wait("/v2/health/live")
    ready = httpx.get(f"{broken.url}/v2/health/ready")
    assert ready.status_code == 503 and "not a readable model bundle" in ready.json()["error"]
    assert httpx.get(f"{broken.url}/v2/models/{MODEL}/ready").status_code == 503
    reply = httpx.post(
        f"{broken.url}/v2/models/{MODEL}/infer", json=infer_body(np.zeros((1, 30), np.float32))
    )
    assert reply.status_code == 503 and "not ready" in reply.json()["error"]
    assert httpx.get(f"{broken.url}/v2/models/{MODEL}").status_code == 503
    # It keeps trying (every 0.2 s here) but says so once per cause.
    time.sleep(1)
    errors = [r for r in broken.log_records() if r["level"] == "error"]
    assert len(errors) == 1 and "cannot load model" in errors[0]["message"]


def test_fail_fast_exits_non_zero(others: dict[str, ServerProcess]) -> None:
    process = others["fail_fast"].process
    assert process.wait(timeout=180) == 1
    errors = [r for r in others["fail_fast"].log_records() if r["level"] == "error"]
    assert len(errors) == 1 and f"models:/{MODEL}/99" in errors[0]["message"]


def test_fraud_serve_champion(others: dict[str, ServerProcess]) -> None:
    champion = others["champion"].wait()
    reply = httpx.post(f"{champion.url}/v1/models/{MODEL}:predict", json={"instances": [ROW, ROW]})
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2
    assert reply.headers["x-model-role"] == "champion" and reply.headers["x-model-version"] == "1"
    assert httpx.get(f"{champion.url}/v2/models/{MODEL}").json()["platform"] == "logistic"


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses process `pid` listens on (psutil tolerates sockets closing meanwhile)."""
    return {c.laddr for c in psutil.Process(pid).connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def test_listen_addresses_and_no_grpc(server: ServerProcess, others: dict[str, ServerProcess]) -> None:
    """`fraud serve` listens on loopback only; the pod entry point on every interface; neither
    starts gRPC unless asked (FRAUD_GRPC_ENABLED)."""
    champion = others["champion"].wait()
    assert listening(champion.process.pid) == {("127.0.0.1", int(champion.url.rsplit(":", 1)[1]))}
    assert listening(server.process.pid) == {("0.0.0.0", int(server.url.rsplit(":", 1)[1]))}
