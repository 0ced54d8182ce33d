"""Predictor pieces in-process: codecs, the small-batch ONNX Runtime path, micro-batching, metrics, and
KServe's own request pipeline (`Model.__call__`, as its gRPC server uses it)."""

import asyncio
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import xgboost as xgb
from kserve import InferInput, InferRequest
from prometheus_client import REGISTRY

from fraudcore.bundle import ONNX_FILE, Bundle, XGBoostScorer, load_bundle
from fraudcore.registry import Registry
from fraudcore.schema import Feature, Schema
from model_server import codec
from model_server.batching import MicroBatcher
from model_server.errors import BatchTooLargeError, InvalidRequestError, NotReadyError
from model_server.metrics import ScoreHistogram
from model_server.model import FraudPredictor
from model_server.routes import ScoringMiddleware
from model_server.small_batches import TOLERANCE, verified_onnx
from tests.conftest import TrainedStore, make_settings
from training.export import export_onnx
from training.synthetic import FEATURES

X = np.arange(60, dtype=np.float32).reshape(2, 30) / 7
CREDIT_CARD = codec.Decoder(Schema.numeric(FEATURES), max_rows=10)


def v2(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def test_decode_matrix_columns_and_binary() -> None:
    tensor = {"name": "f", "shape": [2, 30], "datatype": "FP64", "data": X.ravel().tolist()}
    matrix = CREDIT_CARD.v2(v2([tensor], id="r1"), None)
    assert matrix.batch.x.dtype == np.float32 and matrix.id == "r1" and matrix.outputs == codec.ALL_JSON
    np.testing.assert_array_equal(matrix.batch.x, X)
    columns = [
        {"name": f, "shape": [2], "datatype": "FP32", "data": X[:, i].tolist()}
        for i, f in enumerate(FEATURES)
    ]
    np.testing.assert_array_equal(CREDIT_CARD.v2(v2(columns[::-1]), None).batch.x, X)
    spec = {"name": "f", "shape": [2, 30], "datatype": "FP32", "parameters": {"binary_data_size": X.nbytes}}
    header = v2([spec], outputs=[{"name": "is_fraud", "parameters": {"binary_data": True}}])
    binary = CREDIT_CARD.v2(header + X.tobytes(), len(header))
    np.testing.assert_array_equal(binary.batch.x, X)
    assert binary.outputs == (("is_fraud", True),)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "Time", "shape": [1], "datatype": "FP32", "data": [1.0]}], "missing feature(s): V1, V2"),
        ([{"name": "f", "shape": [1, 30], "datatype": "FP32"}], "needs its values in 'data'"),
        ([{"name": "f", "shape": "1x30", "datatype": "FP32", "data": []}], "expected [N] or [N, 30]"),
        (["features"], "must be an object with a 'name'"),
        ([{"name": "f", "shape": [1, 2, 15], "datatype": "FP32", "data": [0.0] * 30}], "shape [1, 2, 15]"),
        (
            [{"name": f, "shape": [1], "datatype": "FP32", "data": [0.0]} for f in (*FEATURES, "V1")],
            "more than once",
        ),
    ],
)
def test_decode_errors_name_the_problem(inputs: list[object], message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        CREDIT_CARD.v2(v2(inputs), None)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_decode_limits_and_json() -> None:
    with pytest.raises(BatchTooLargeError):
        CREDIT_CARD.v2(v2([{"name": "f", "shape": [11, 30], "datatype": "FP32", "data": [0.0] * 330}]), None)
    with pytest.raises(InvalidRequestError, match="does not fit"):
        CREDIT_CARD.v2(b"{}", 5)
    with pytest.raises(InvalidRequestError, match="JSON object"):
        CREDIT_CARD.v2(b"[1, 2]", None)
    with pytest.raises(InvalidRequestError, match="unknown feature"):
        CREDIT_CARD.v1(orjson.dumps({"instances": [{**dict.fromkeys(FEATURES, 0.0), "Colour": 1}]}))
    with pytest.raises(InvalidRequestError, match="objects keyed by feature or lists"):
        CREDIT_CARD.v1(orjson.dumps({"instances": [[1.0] * 30, [1.0] * 29]}))
    with pytest.raises(InvalidRequestError, match="empty batch"):
        CREDIT_CARD.v1(b'{"instances": []}')


MIXED = codec.Decoder(
    Schema(
        (
            Feature("amount"),
            Feature("channel", "categorical", ("atm", "pos", "web")),
            Feature("card_present", "boolean"),
            Feature("account_age_days", optional=True),
        ),
        label="chargeback",
    ),
    max_rows=10,
)
"""A made-up schema of every kind (no model needed to decode by it)."""
MIXED_X = np.array([[12.5, 2, 1, np.nan], [80.0, np.nan, 0, 40.0]], np.float32)
"""Rows 0 and 1 below, encoded: the second channel is unknown, the first age missing."""


def mixed_inputs(**change: dict[str, object]) -> list[dict[str, object]]:
    inputs = {
        "amount": {"datatype": "FP64", "data": [12.5, 80]},
        "channel": {"datatype": "BYTES", "data": ["web", "kiosk"]},
        "card_present": {"datatype": "BOOL", "data": [True, False]},
        "account_age_days": {"datatype": "INT32", "data": [None, 40]},
    }
    inputs.update(change)
    return [{"name": name, "shape": [2], **spec} for name, spec in inputs.items() if spec]


def binary_strings(*values: bytes) -> bytes:
    """BYTES elements as the binary tensor extension lays them out: a 4-byte length, then the bytes."""
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)


def test_decode_any_schema_json_binary_v1_and_kserve() -> None:
    as_json = MIXED.v2(v2(mixed_inputs()), None).batch
    np.testing.assert_array_equal(as_json.x, MIXED_X)
    assert as_json.text["channel"].tolist() == ["web", "kiosk"] and as_json.unknown == {"channel": 1}
    strings, flags, ages = (
        binary_strings(b"web", b"kiosk"),
        b"\x01\x00",
        np.array([np.nan, 40], "<f4").tobytes(),
    )
    header = v2(mixed_inputs(
        channel={"datatype": "BYTES", "parameters": {"binary_data_size": len(strings)}},
        card_present={"datatype": "BOOL", "parameters": {"binary_data_size": 2}},
        account_age_days={"datatype": "FP32", "parameters": {"binary_data_size": 8}},
    ))  # fmt: skip
    binary = MIXED.v2(header + strings + flags + ages, len(header)).batch
    np.testing.assert_array_equal(binary.x, MIXED_X)
    assert binary.text["channel"].tolist() == ["web", "kiosk"] and binary.unknown == {"channel": 1}
    instances = [{"amount": 12.5, "channel": "web", "card_present": True},
                 {"amount": 80, "channel": "kiosk", "card_present": 0, "account_age_days": 40}]  # fmt: skip
    v1 = MIXED.v1(orjson.dumps({"instances": instances}))
    np.testing.assert_array_equal(v1.x, MIXED_X)
    columns = {
        "amount": ("FP32", np.array([12.5, 80], np.float32)),
        "channel": ("BYTES", np.array([b"web", b"kiosk"], object)),  # as KServe's gRPC server hands them
        "card_present": ("BOOL", np.array([True, False])),
        "account_age_days": ("FP64", np.array([np.nan, 40])),
    }
    tensors = []
    for name, (datatype, values) in columns.items():
        tensors.append(InferInput(name, [2], datatype))
        tensors[-1].set_data_from_numpy(values, binary_data=True)
    kserve = MIXED.infer_request(InferRequest(model_name="m", infer_inputs=tensors))
    np.testing.assert_array_equal(kserve.x, MIXED_X)
    assert kserve.text["channel"].tolist() == ["web", "kiosk"]
    absent = MIXED.v2(v2(mixed_inputs(account_age_days={})), None).batch
    assert np.isnan(absent.x[:, 3]).all()


MIXED_ERRORS: list[Any] = [
    ("amount", None, [], "missing feature(s): amount"),
    ("amount", "FP32", ["web", "pos"], "input 'amount': values must be numbers only"),
    ("amount", "BYTES", ["1", "2"], "feature amount is numeric: send numbers"),
    ("channel", "FP32", [1, 2], "feature channel is categorical: send BYTES"),
    ("channel", "BYTES", ["web", 3], "feature channel is categorical: its values must be strings, not 3"),
    ("channel", "BYTES", ["web", None], "no value (null) in row 1 of required feature channel"),
    ("amount", "FP64", [1, None], "no value (null or NaN) in row 1 of required feature amount"),
    ("card_present", "BOOL", ["yes", "no"], "input 'card_present': BOOL values must be true or false"),
    ("card_present", "INT8", [1, 2], "value 2 in row 1, feature card_present: a boolean"),
    pytest.param("amount", "FP32", [1e39, 1], "non-finite value inf in row 0, feature amount",
                 marks=pytest.mark.filterwarnings("ignore:overflow encountered in cast")),
    ("colour", "BYTES", ["red", "red"], "unknown input(s) colour"),
    ("account_age_days", "FP32", [1, 2, 3], "has 3 values but shape [2] needs 2"),
]  # fmt: skip
"""One input changed (datatype None: left out) and what the error says."""


@pytest.mark.parametrize(("name", "datatype", "data", "message"), MIXED_ERRORS)
def test_decode_any_schema_errors_name_the_feature(
    name: str, datatype: str | None, data: list[object], message: str
) -> None:
    change = {name: {"datatype": datatype, "data": data} if datatype else {}}
    with pytest.raises(InvalidRequestError) as raised:
        MIXED.v2(v2(mixed_inputs(**change)), None)
    assert message in str(raised.value)


def test_schema_decides_shapes_sizes_and_limits() -> None:
    matrix = {"name": "features", "shape": [2, 4], "datatype": "FP32", "data": [0.0] * 8}
    with pytest.raises(InvalidRequestError, match=r"expected \[N\], one tensor per feature"):
        MIXED.v2(v2([matrix]), None)
    with pytest.raises(InvalidRequestError, match="lists of values are not accepted"):
        MIXED.v1(orjson.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}))
    with pytest.raises(InvalidRequestError, match="6 input tensors: this model takes 4 \\[N\\] tensors"):
        MIXED.v2(v2(mixed_inputs() + mixed_inputs()[:2]), None)
    strings = binary_strings(b"web", b"kiosk")
    short = v2(mixed_inputs(channel={"datatype": "BYTES", "parameters": {"binary_data_size": len(strings)}}))
    with pytest.raises(InvalidRequestError, match="binary_data_size"):
        MIXED.v2(short + strings[:-1], len(short))
    # Room per row: each name (repeated on every v1 row), the longest category, a value.
    assert MIXED.max_bytes == 10 * (len("amountchannelcard_presentaccount_age_days") + 3 + 4 * 32) + 65536


def test_encode_json_and_binary() -> None:
    scores, decisions = np.array([0.25, 0.75], np.float32), np.array([False, True])
    body, length = codec.encode_v2("m", "3", "r", scores, decisions, codec.ALL_JSON)
    doc = json.loads(body)
    assert length is None and doc["model_version"] == "3" and doc["id"] == "r"
    assert doc["outputs"][0]["data"] == [0.25, 0.75] and doc["outputs"][1]["data"] == [False, True]
    body, length = codec.encode_v2("m", "3", "r", scores, decisions, codec.ALL_BINARY)
    assert length is not None
    sizes = [o["parameters"]["binary_data_size"] for o in json.loads(body[:length])["outputs"]]
    assert sizes == [8, 2]
    np.testing.assert_array_equal(np.frombuffer(body[length : length + 8], "<f4"), scores)
    assert body[length + 8 :] == b"\x00\x01"
    assert json.loads(codec.encode_v1("3", scores, decisions))["predictions"][1] == {
        "fraud_probability": 0.75,
        "is_fraud": True,
    }


@pytest.fixture(scope="module")
def challenger(trained_store: TrainedStore) -> Bundle:
    """The XGBoost challenger's bundle, exported to ONNX at training."""
    uri = f"models:/fraud-detector/{trained_store.challenger.version}"
    return Registry(trained_store.settings).load(uri).bundle


def test_onnx_export_matches_xgboost(challenger: Bundle, trained_store: TrainedStore) -> None:
    x = trained_store.frame[list(FEATURES)].to_numpy(np.float32)[:2000]
    onnx = verified_onnx(challenger)
    assert onnx is not None
    want = challenger.scorer.predict_proba(x)
    assert np.abs(onnx.predict_proba(x) - want).max() <= TOLERANCE
    assert np.abs(onnx.predict_proba(x[7:8]) - want[7:8]).max() <= TOLERANCE


def test_onnx_export_is_used_only_when_it_matches(
    challenger: Bundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without an export, with one that ONNX Runtime cannot run, and with another model's export,
    the model scores every batch itself, and the log says why."""
    copy = tmp_path / "bundle"
    shutil.copytree(challenger.path, copy)
    exported = copy / ONNX_FILE
    other = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=[0.0, 1.0]), 2)
    cases = {
        "no ONNX export": lambda: exported.unlink(),
        "cannot run it": lambda: exported.write_bytes(b"not a model"),
        "differs from xgboost": lambda: exported.write_bytes(export_onnx(XGBoostScorer(other), 30) or b""),
    }
    for reason, change in cases.items():
        change()
        with caplog.at_level(logging.INFO, logger="model_server.small_batches"):
            assert verified_onnx(load_bundle(copy)) is None
        assert reason in caplog.text, caplog.text
        caplog.clear()


def test_micro_batcher_merges_waiting_requests() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def predict(x: np.ndarray) -> np.ndarray:
        release.wait(5)
        sizes.append(len(x))
        return x[:, 0].copy()

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(predict, max_rows=5)
        first = asyncio.ensure_future(batcher.score(np.full((1, 30), 0.0, np.float32)))
        await asyncio.sleep(0.05)  # the first call is now in the model; these queue behind it
        rest = [
            asyncio.ensure_future(batcher.score(np.full((2, 30), float(i), np.float32))) for i in (1, 2, 3)
        ]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, *rest)
        batcher.close()
        return results

    results = asyncio.run(run())
    assert sizes == [1, 4, 2]  # 2 + 2 rows fit the limit of 5, the last request goes alone
    assert [r.tolist() for r in results] == [[0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_micro_batcher_scores_small_batches_on_the_loop() -> None:
    loop_thread: list[str] = []

    def inline(x: np.ndarray) -> np.ndarray:
        loop_thread.append(threading.current_thread().name)
        return x[:, 0] + 1

    def threaded(x: np.ndarray) -> np.ndarray:
        return x[:, 0] - 1

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(threaded, max_rows=3, inline=inline, inline_rows=3)
        together = [batcher.score(np.full((1, 30), float(i), np.float32)) for i in range(3)]
        results = await asyncio.gather(*together, batcher.score(np.zeros((4, 30), np.float32)))
        batcher.close()
        return results

    results = asyncio.run(run())
    assert [r.tolist() for r in results[:3]] == [[1.0], [2.0], [3.0]]  # merged: one inline call
    assert results[3].tolist() == [-1.0] * 4
    assert loop_thread == [threading.main_thread().name]


def test_micro_batcher_reports_model_errors() -> None:
    def predict(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    async def run() -> None:
        batcher = MicroBatcher(predict, max_rows=5)
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.score(X)
        batcher.close()

    asyncio.run(run())


def test_score_histogram_small_and_large_batches() -> None:
    histogram = ScoreHistogram((0.1, 0.5, 1.0))
    histogram.observe(("1", "champion"), np.array([0.05, 0.5, 0.7], np.float32))
    histogram.observe(("1", "champion"), np.linspace(0, 1, 100, dtype=np.float32))
    (family,) = histogram.collect()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "fraud_score_bucket"}
    linspace = np.linspace(0, 1, 100, dtype=np.float32)
    assert buckets["0.1"] == 1 + (linspace <= 0.1).sum()
    assert buckets["0.5"] == 2 + (linspace <= 0.5).sum()
    assert buckets["+Inf"] == 103
    total = next(s.value for s in family.samples if s.name == "fraud_score_sum")
    assert total == pytest.approx(1.25 + linspace.sum(dtype=np.float64), rel=1e-6)


def test_kserve_pipeline_v2_and_v1(trained_store: TrainedStore) -> None:
    """KServe's generic path (gRPC and its own routes) reaches the same scoring code."""
    settings = make_settings(trained_store.settings.home, model_uri="models:/fraud-detector@champion")
    model = FraudPredictor("fraud-detector", settings)
    with pytest.raises(NotReadyError):
        asyncio.run(model.score(codec.Batch(X), "r", time.perf_counter()))
    assert model.load() and model.version == "1"
    tensor = InferInput("features", [2, 30], "FP32")
    tensor.set_data_from_numpy(X)
    request = InferRequest(model_name="fraud-detector", infer_inputs=[tensor], request_id="g1")
    (response, headers) = asyncio.run(model(request, headers={}))
    want = model.bundle.scorer.predict_proba(X)
    np.testing.assert_allclose(response.outputs[0].as_numpy(), want, atol=1e-6)
    assert response.id == "g1" and response.model_version == "1"
    assert headers == {"x-model-version": "1", "x-model-role": "champion"}
    (v1, _) = asyncio.run(model({"instances": X.tolist()}, headers={"x-request-id": "h"}))
    assert [p["fraud_probability"] for p in v1["predictions"]] == pytest.approx(want.tolist(), abs=1e-6)
    bad = InferInput("features", [2, 30], "BOOL")
    bad.set_data_from_numpy(X > 1)
    with pytest.raises(InvalidRequestError, match="datatype BOOL; the"):
        asyncio.run(model(InferRequest(model_name="fraud-detector", infer_inputs=[bad]), headers={}))
    model.stop()
    assert not model.ready


INTERNAL = {"reason": "internal_error", "model_version": "1", "role": "champion"}


def test_unexpected_errors_get_a_fixed_500(
    trained_store: TrainedStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the scoring path (here: an ASGI server handing over a body that is not bytes) is
    answered `{"error": "internal error"}`, counted, and logged once with its traceback."""
    settings = make_settings(trained_store.settings.home, model_uri="models:/fraud-detector@champion")
    model = FraudPredictor("fraud-detector", settings)
    assert model.load()
    middleware = ScoringMiddleware(lambda *_: None, model, None)  # type: ignore[arg-type]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": "not bytes", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/fraud-detector/infer",
             "headers": [(b"x-request-id", b"bug-1")]}  # fmt: skip
    before = REGISTRY.get_sample_value("fraud_rejected_requests_total", INTERNAL) or 0
    with caplog.at_level(logging.INFO, logger="model_server.requests"):
        asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    model.stop()
    assert sent[0]["status"] == 500 and sent[1]["body"] == b'{"error":"internal error"}'
    assert REGISTRY.get_sample_value("fraud_rejected_requests_total", INTERNAL) == before + 1
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "bug-1"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and records[0].exc_info is not None
    assert records[0].status == 500 and "TypeError" not in records[0].error  # type: ignore[attr-defined]
