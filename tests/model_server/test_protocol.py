"""The predictor against the Open Inference Protocol REST spec's prose (kserve/open-inference-protocol,
specification/protocol/inference_rest.md), its own OpenAPI document (schemathesis), and abuse: one
real server process over HTTP, the loaded challenger (version 2)."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import TrainedStore
from tests.model_server.test_server import MODEL, challenger, infer_body, metric_samples, sample
from tests.support import ServerProcess
from training.synthetic import FEATURES

VERSION = "2"
INFER = f"/v2/models/{MODEL}/infer"
LIVENESS_BOUND_S = 0.5
"""Slowest /v2/health/live answer allowed while an abusive request is handled: only an event loop
blocked by that request would take this long on any machine (an unblocked one answers in ms)."""
REFUSAL_BOUND_S = 10.0
"""The abusive request must be refused well before this (it took 5 s at 20,000 inputs when the
duplicate check was quadratic, and a chunked body was read whole)."""


@pytest.fixture(scope="module")
def server(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The challenger pinned by version (2), as the chart pins it."""
    with challenger(trained_store, tmp_path_factory.mktemp("protocol"), f"models:/{MODEL}/{VERSION}") as main:
        yield main


def rows(n: int = 2) -> np.ndarray:
    return (np.arange(n * 30, dtype=np.float32).reshape(n, 30) % 7) / 3


def post(server: ServerProcess, body: Any, path: str = INFER) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, timeout=30)


def tracebacks(server: ServerProcess) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if "exception" in r or r.get("level") == "error"]


# --- versions ------------------------------------------------------------------------------------


def test_tritonclient_pins_the_loaded_version(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_model_ready(MODEL, VERSION)
    assert client.get_model_metadata(MODEL, VERSION)["versions"] == [VERSION]
    x = rows(3)
    tensor = triton.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = client.infer(MODEL, [tensor], model_version=VERSION)
    assert result.get_response()["model_version"] == VERSION and result.as_numpy("is_fraud").shape == (3,)
    with pytest.raises(InferenceServerException, match="no version '9'"):
        client.infer(MODEL, [tensor], model_version="9")
    assert not client.is_model_ready(MODEL, "9")
    client.close()


def test_other_versions_are_404_without_a_traceback(server: ServerProcess) -> None:
    base = f"{server.url}/v2/models/{MODEL}/versions"
    before = len(tracebacks(server))
    answers = [
        httpx.get(f"{base}/9"),
        httpx.get(f"{base}/9/ready"),
        httpx.post(f"{base}/9/infer", json=infer_body(rows(1))),
    ]
    for answer in answers:
        assert answer.status_code == 404 and "no version '9'" in answer.json()["error"]
    assert httpx.get(f"{base}/{VERSION}/ready").json() == {"name": MODEL, "ready": True}
    assert httpx.post(f"{base}/{VERSION}/infer", json=infer_body(rows(1))).status_code == 200
    assert len(tracebacks(server)) == before


# --- the spec's prose, one statement per check ----------------------------------------------------


def test_id_is_returned_and_outputs_are_the_requested_ones(server: ServerProcess) -> None:
    """ "id": "if specified this identifier must be returned in the response"; the spec's example:
    for a request naming output0 "the inference server must return the output0 output tensor"."""
    reply = post(server, infer_body(rows(2), id="42", outputs=[{"name": "is_fraud"}]))
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["id"] == "42" and doc["model_name"] == MODEL and doc["model_version"] == VERSION
    assert [(o["name"], o["datatype"], o["shape"]) for o in doc["outputs"]] == [("is_fraud", "BOOL", [2])]
    both = post(server, infer_body(rows(2), outputs=[{"name": "is_fraud"}, {"name": "fraud_probability"}]))
    assert [o["name"] for o in both.json()["outputs"]] == ["is_fraud", "fraud_probability"]
    unknown = post(server, infer_body(rows(2), outputs=[{"name": "output0"}]))
    assert unknown.status_code == 400 and "'output0'" in unknown.json()["error"]


def test_tensor_data_natural_or_flat_and_integers(server: ServerProcess) -> None:
    """ "Tensor elements may be presented in their nature multi-dimensional representation, or as a
    flattened one-dimensional representation"; elements "may be an integer, floating-point number"."""
    x = np.rint(rows(2) * 3)
    flat = post(server, infer_body(x))
    nested = {"inputs": [{"name": "f", "shape": [2, 30], "datatype": "FP32", "data": x.astype(int).tolist()}]}
    natural = post(server, nested)
    assert flat.status_code == natural.status_code == 200, natural.text
    assert natural.json()["outputs"] == flat.json()["outputs"]


def test_health_and_metadata_objects(server: ServerProcess) -> None:
    """The $ready_model_response, $live_server_response, $metadata_server_response and
    $metadata_model_response objects, with $metadata_tensor shapes using -1 for variable sizes."""
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    for path in ("/v2", "/v2/"):
        meta = httpx.get(server.url + path).json()
        assert isinstance(meta["name"], str) and isinstance(meta["version"], str)
        assert meta["extensions"] == ["binary_tensor_data"]
    model = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
    assert model["name"] == MODEL and model["versions"] == [VERSION] and model["platform"] == "xgboost"
    assert model["inputs"][0] == {"name": "features", "datatype": "FP32", "shape": [-1, 30]}
    assert model["inputs"][1:] == [{"name": f, "datatype": "FP32", "shape": [-1]} for f in FEATURES]
    assert model["parameters"]["schema"]["features"][0] == {"name": "Time", "kind": "numeric"}
    assert [o["name"] for o in model["outputs"]] == ["fraud_probability", "is_fraud"]


WRONG: list[tuple[str, dict[str, Any], str]] = [
    ("id number", {"id": 42}, "'id' must be a string"),
    ("id object", {"id": {"a": 1}}, "'id' must be a string"),
    ("parameters list", {"parameters": [1]}, "request 'parameters' must be an object"),
    ("parameter object", {"parameters": {"p": {"x": 1}}}, "'p' must be a string, number or boolean"),
    ("binary flag text", {"parameters": {"binary_data_output": "yes"}}, "'binary_data_output' must be true"),
    ("outputs object", {"outputs": {"name": "is_fraud"}}, "'outputs' must be a list"),
    ("outputs strings", {"outputs": ["is_fraud"]}, "requested output None"),
    ("output twice", {"outputs": [{"name": "is_fraud"}, {"name": "is_fraud"}]}, "named twice"),
    ("output parameters", {"outputs": [{"name": "is_fraud", "parameters": 3}]}, "'is_fraud' 'parameters'"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "message"), [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_wrong_typed_request_fields_are_400(
    server: ServerProcess, extra: dict[str, Any], message: str
) -> None:
    """$inference_request: "id" : $string, "parameters" : $parameters, "outputs" : [ $request_output ]."""
    reply = post(server, infer_body(rows(1), **extra))
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text


INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("datatype object", {"datatype": {}}, "datatype {}; expected one of FP32, FP64, INT8"),
    ("datatype list", {"datatype": []}, "datatype []; expected one of FP32"),
    ("negative size", {"shape": [-1, 30]}, "expected [N] or [N, 30]"),
    ("size over u64", {"shape": [1, 2**64]}, "expected [N] or [N, 30]"),
    ("input parameters", {"parameters": "binary"}, "input 'x' 'parameters' must be an object"),
    ("name not text", {"name": 7}, "must be an object with a 'name'"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [i[1:] for i in INPUTS], ids=[i[0] for i in INPUTS])
def test_malformed_inputs_are_400_naming_the_field(
    server: ServerProcess, change: dict[str, Any], message: str
) -> None:
    """$request_input: "shape": each dimension "an integer representable as an unsigned 64-bit
    integer", "datatype" one of the tensor data types; a failed request gets {"error": $string}."""
    spec = {"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30, **change}
    before = sample(metric_samples(server.url), "fraud_rejected_requests_total", reason="invalid_input")
    reply = post(server, {"inputs": [spec]})
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text
    after = sample(metric_samples(server.url), "fraud_rejected_requests_total", reason="invalid_input")
    assert after == before + 1


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_numbers_are_named(server: ServerProcess, token: str) -> None:
    body = json.dumps(infer_body(rows(1))).replace("0.0,", f"{token},", 1).encode()
    reply = post(server, body)
    assert (
        reply.status_code == 400
        and "non-finite numbers (NaN, Infinity) are not allowed" in reply.json()["error"]
    )


def test_framework_errors_are_error_objects(server: ServerProcess) -> None:
    """Every 4xx is {"error": …}, also those FastAPI answers itself (405 keeps its Allow header)."""
    wrong_method = httpx.get(server.url + INFER)
    assert wrong_method.status_code == 405 and "Method Not Allowed" in wrong_method.json()["error"]
    assert "POST" in wrong_method.headers["allow"]
    assert httpx.delete(f"{server.url}/v2/health/live").json()["error"].startswith("Method Not Allowed")
    missing = httpx.get(f"{server.url}/v3/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found: GET '/v3/nothing'"}
    explain = httpx.post(f"{server.url}/v1/models/{MODEL}:explain", json={"instances": []})
    assert explain.status_code == 400 and "empty batch" in explain.json()["error"]
    unload = httpx.post(f"{server.url}/v2/repository/models/{MODEL}/unload")
    assert unload.status_code == 403 and httpx.get(f"{server.url}/v2/health/ready").status_code == 200


# --- abuse: refused quickly, bounded messages, the event loop stays free --------------------------


async def _worst_liveness(url: str, abuse: asyncio.Task[Any]) -> float:
    """Slowest /v2/health/live answer while `abuse` runs (at least three probes)."""
    worst, probes = 0.0, 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not abuse.done() or probes < 3:
            started = time.perf_counter()
            assert (await client.get("/v2/health/live")).status_code == 200
            worst, probes = max(worst, time.perf_counter() - started), probes + 1
            await asyncio.sleep(0.01)
    return worst


async def _many_inputs(url: str) -> tuple[int, str, float]:
    spec = {"name": "V1", "shape": [1], "datatype": "FP32", "data": [0.0]}
    body = json.dumps({"inputs": [spec] * 20_000}).encode()
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        reply = await client.post(INFER, content=body)
    return reply.status_code, reply.json()["error"], time.perf_counter() - started


async def _chunked_flood(url: str, megabytes: int = 64) -> tuple[int, str, float]:
    """A chunked body far over the limit, sent until the server answers: the answer's status line."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    writer.write(f"POST {INFER} HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n".encode())
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
    for _ in range(megabytes * 16):
        if answer.done():
            break
        writer.write(chunk)
        await writer.drain()
    head = (await asyncio.wait_for(answer, 30)).decode()
    elapsed = time.perf_counter() - started
    body = await reader.read(4096)
    writer.close()
    return int(head.split()[1]), body.decode(errors="replace"), elapsed


@pytest.mark.parametrize("abuse", [_many_inputs, _chunked_flood], ids=["20000 inputs", "chunked 64 MB"])
def test_abuse_is_refused_quickly_while_liveness_stays_fast(server: ServerProcess, abuse: Any) -> None:
    async def run() -> tuple[tuple[int, str, float], float]:
        task = asyncio.create_task(abuse(server.url))
        worst = await _worst_liveness(server.url, task)
        return await task, worst

    (status, message, elapsed), worst = asyncio.run(run())
    assert status in (400, 413) and elapsed < REFUSAL_BOUND_S, (status, elapsed)
    assert len(message) < 600 and ("20000 input tensors" in message or "over the limit" in message), message
    assert worst < LIVENESS_BOUND_S, f"/v2/health/live took {worst:.3f} s during the abusive request"


def test_long_names_are_cut_in_messages(server: ServerProcess) -> None:
    spec = {"name": "n" * 100_000, "shape": [1, 30], "datatype": "BYTES" * 10_000, "data": [0.5] * 30}
    reply = post(server, {"inputs": [spec]})
    assert reply.status_code == 400 and len(reply.text) < 300 and "..." in reply.json()["error"]
    unknown = [{"name": f"col{i}", "shape": [1], "datatype": "FP32", "data": [0.0]} for i in range(31)]
    listed = post(server, {"inputs": unknown}).json()["error"]
    assert "col0, col1, col2, col3, col4 and 26 more" in listed


# --- the server's own OpenAPI document ------------------------------------------------------------


def test_docs_and_openapi_document(server: ServerProcess) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text and "swagger" in docs.text.lower()
    doc = httpx.get(f"{server.url}/openapi.json").json()
    versioned = doc["paths"]["/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert set(versioned["responses"]) == {"200", "400", "401", "404", "413", "500", "503"}
    assert versioned["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "HTTPValidationError" not in json.dumps(doc)


def test_schemathesis_finds_no_server_error(server: ServerProcess, tmp_path: Path) -> None:
    """Fuzz every operation the document lists (bounded: 10 examples each, 45 s) with the path
    parameters pinned to this model and version so requests reach the validation code."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.model_name" = "{MODEL}"\n"path.model_version" = "{VERSION}"\n')
    checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
               f"{server.url}/openapi.json", "--checks", checks, "--phases", "examples,coverage,fuzzing",
               "--max-examples", "10", "--max-time", "45", "--seed", "1", "--request-timeout", "10",
               "--no-color"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    assert not [r for r in server.log_records() if r.get("status", 0) >= 500 or "exception" in r]
