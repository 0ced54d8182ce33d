"""Reason codes over HTTP from a real predictor serving a model with a categorical feature: v2 JSON
and binary (tritonclient), only on request, `top_k` checked, v1 `:explain`, KServe's own pipeline,
and the audit log keeping the reasons of flagged rows."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import pytest
import tritonclient.http as triton
from kserve import InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

from fraudcore import auditdb
from fraudcore.bundle import Bundle
from fraudcore.reasons import explain
from fraudcore.registry import Registry
from model_server.model import FraudPredictor
from tests.conftest import make_settings
from tests.model_server.test_any_schema import INFER, LABEL, columns, transactions
from tests.model_server.test_server import MODEL, launch, server_env
from tests.pg import Postgres
from tests.support import ServerProcess, running
from training.pipeline import train_and_register
from training.train import TrainConfig

EXPLAIN = f"/v1/models/{MODEL}:explain"
REASONS = [{"name": "reason_codes"}]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres
) -> Iterator[tuple[ServerProcess, Bundle]]:
    """The predictor serving an XGBoost model of `transactions`, auditing into a fresh table."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {auditdb.TABLE}")
    work = tmp_path_factory.mktemp("reasons")
    data = work / "transactions.csv"
    transactions(4000, seed=3).to_csv(data, index=False)
    settings = make_settings(work / ".fraud")
    registry = Registry(settings)
    version = train_and_register(
        registry, TrainConfig.from_settings(settings, "xgboost", rounds=40, seed=1), str(data), LABEL
    ).version
    uri = f"models:/{MODEL}/{version}"
    server = launch(work, server_env(settings.home, FRAUD_MODEL_URI=uri, FRAUD_AUDIT_DSN=postgres.dsn))
    with running(server):
        yield server.wait(), registry.load(uri).bundle


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Rows of every channel, half of them risky enough to be flagged."""
    frame = transactions(12, seed=11).drop(columns=LABEL)
    risky = frame.index % 2 == 0
    frame["channel"] = frame["channel"].where(~risky, "web")
    frame["card_present"] = frame["card_present"].where(~risky, "false")
    frame["amount"] = frame["amount"].where(~risky, 900.0)
    return frame


def instances(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """v1 instances: one dict per row, booleans as true/false, null where a value is missing."""
    sent = rows.assign(card_present=rows["card_present"] == "true").astype(object)
    return [{k: None if v != v else v for k, v in row.items()} for row in sent.to_dict("records")]


def output(reply: httpx.Response, name: str) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return next(o for o in reply.json()["outputs"] if o["name"] == name)


def test_v2_json_reasons_are_the_models_own(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, bundle = served
    schema = bundle.card.schema
    want = explain(bundle.scorer, schema, schema.encode(rows))
    reply = httpx.post(server.url + INFER, json={"inputs": columns(rows), "outputs": REASONS})
    names = [o["name"] for o in reply.json()["outputs"]]
    assert names == ["reason_codes", "reason_contributions"]
    codes, contributions = output(reply, "reason_codes"), output(reply, "reason_contributions")
    assert codes["datatype"] == "BYTES" and contributions["datatype"] == "FP32"
    assert codes["shape"] == contributions["shape"] == [len(rows), 4]
    assert codes["data"] == want.names.ravel().tolist()
    np.testing.assert_allclose(contributions["data"], want.values.ravel(), atol=1e-5)


def test_reasons_only_when_asked_and_top_k(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, _ = served
    plain = httpx.post(server.url + INFER, json={"inputs": columns(rows)})
    assert [o["name"] for o in plain.json()["outputs"]] == ["fraud_probability", "is_fraud"]
    body = {
        "inputs": columns(rows),
        "outputs": [{"name": "is_fraud"}, *REASONS],
        "parameters": {"top_k": 2},
    }
    reply = httpx.post(server.url + INFER, json=body)
    assert [o["name"] for o in reply.json()["outputs"]] == [
        "is_fraud",
        "reason_codes",
        "reason_contributions",
    ]
    assert output(reply, "reason_codes")["shape"] == [len(rows), 2]


@pytest.mark.parametrize("top_k", [0, 5, -1, "2", 1.5, True])
def test_a_bad_top_k_is_400_naming_it(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame, top_k: object
) -> None:
    server, _ = served
    body = {"inputs": columns(rows), "outputs": REASONS, "parameters": {"top_k": top_k}}
    for path, sent in ((INFER, body), (EXPLAIN, {"instances": [], "parameters": {"top_k": top_k}})):
        if path == EXPLAIN:
            sent["instances"] = instances(rows.head(2))
        reply = httpx.post(server.url + path, json=sent)
        assert reply.status_code == 400, reply.text
        assert "'top_k' must be a whole number from 1 to 4" in reply.json()["error"]


def test_v2_binary_reasons_with_tritonclient(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame
) -> None:
    server, bundle = served
    schema = bundle.card.schema
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    tensors = []
    for name, datatype, array in (
        ("amount", "FP32", rows["amount"].to_numpy(np.float32)),
        ("channel", "BYTES", rows["channel"].to_numpy(object)),
        ("card_present", "BOOL", (rows["card_present"] == "true").to_numpy()),
        ("account_age_days", "FP32", rows["account_age_days"].to_numpy(np.float32)),
    ):
        tensors.append(triton.InferInput(name, [len(rows)], datatype))
        tensors[-1].set_data_from_numpy(array, binary_data=True)
    outputs = [triton.InferRequestedOutput("reason_codes", binary_data=True)]
    result = client.infer(MODEL, tensors, outputs=outputs, parameters={"top_k": 3})
    client.close()
    want = explain(bundle.scorer, schema, schema.encode(rows), 3)
    codes = result.as_numpy("reason_codes")
    assert codes.shape == (len(rows), 3)
    assert [c.decode() for c in codes.ravel()] == want.names.ravel().tolist()
    np.testing.assert_allclose(result.as_numpy("reason_contributions"), want.values, atol=1e-5)


def test_v1_explain(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, bundle = served
    schema = bundle.card.schema
    sent = instances(rows)
    reply = httpx.post(server.url + EXPLAIN, json={"instances": sent}, headers={"x-request-id": "e1"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == "e1" and reply.headers["x-model-version"] == "1"
    answer = reply.json()
    assert len(answer["predictions"]) == len(answer["explanations"]) == len(rows)
    want = explain(bundle.scorer, schema, schema.encode(rows))
    for explanation, names, values in zip(answer["explanations"], want.names, want.values, strict=True):
        assert [r["feature"] for r in explanation] == list(names)
        np.testing.assert_allclose([r["contribution"] for r in explanation], values, atol=1e-5)
    two = httpx.post(server.url + EXPLAIN, json={"instances": sent, "parameters": {"top_k": 2}})
    assert {len(e) for e in two.json()["explanations"]} == {2}
    other = httpx.post(server.url + "/v1/models/other:explain", json={"instances": sent})
    assert other.status_code == 404


def test_audit_rows_carry_the_reasons_of_flagged_rows(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame, postgres: Postgres
) -> None:
    server, bundle = served
    plain = httpx.post(server.url + INFER, json={"inputs": columns(rows)}, headers={"x-request-id": "a1"})
    asked = {"inputs": columns(rows), "outputs": [{"name": "is_fraud"}, *REASONS]}
    reply = httpx.post(server.url + INFER, json=asked, headers={"x-request-id": "a2"})
    assert plain.status_code == reply.status_code == 200
    flagged = output(reply, "is_fraud")["data"]
    assert 0 < sum(flagged) < len(rows)
    want = explain(bundle.scorer, bundle.card.schema, bundle.card.schema.encode(rows)).as_json()
    for request_id in ("a1", "a2"):
        stored = _audited(postgres.dsn, request_id, len(rows))
        assert [decision for decision, _ in stored] == flagged
        for (decision, reasons), expected in zip(stored, want, strict=True):
            if not decision:
                assert reasons is None
                continue
            assert [r["feature"] for r in reasons] == [r["feature"] for r in expected]
            np.testing.assert_allclose(
                [r["contribution"] for r in reasons], [r["contribution"] for r in expected], atol=1e-5
            )


def _audited(dsn: str, request_id: str, count: int) -> list[tuple[bool, Any]]:
    """A request's audit rows (decision, reasons), waiting for the writer."""
    deadline = time.monotonic() + 20
    while True:
        with psycopg.connect(dsn) as conn:
            found = conn.execute(
                f"SELECT decision, reasons FROM {auditdb.TABLE} WHERE request_id = %s ORDER BY row_index",
                (request_id,),
            ).fetchall()
        if len(found) == count or time.monotonic() > deadline:
            assert len(found) == count
            return [(bool(d), r) for d, r in found]
        time.sleep(0.2)


def test_kserve_pipeline_returns_reasons_when_asked(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame
) -> None:
    """KServe's own path (gRPC, its generic routes) reaches the same reasons."""
    _, bundle = served
    model = FraudPredictor(
        MODEL, make_settings(bundle.path.parent / "in-process", model_uri=str(bundle.path))
    )
    assert model.load()
    inputs = []
    for name, datatype, array in (
        ("amount", "FP32", rows["amount"].to_numpy(np.float32)),
        ("channel", "BYTES", rows["channel"].to_numpy(object)),
        ("card_present", "BOOL", (rows["card_present"] == "true").to_numpy()),
        ("account_age_days", "FP32", rows["account_age_days"].to_numpy(np.float32)),
    ):
        inputs.append(InferInput(name, [len(rows)], datatype))
        inputs[-1].set_data_from_numpy(array, binary_data=False)
    plain = InferRequest(model_name=MODEL, infer_inputs=inputs, request_id="k1")
    response, _ = asyncio.run(model(plain, headers={}))
    assert [o.name for o in response.outputs] == ["fraud_probability", "is_fraud"]
    asked = InferRequest(
        model_name=MODEL,
        infer_inputs=inputs,
        request_id="k2",
        request_outputs=[RequestedOutput("reason_codes")],
        parameters={"top_k": 2},
    )
    response, _ = asyncio.run(model(asked, headers={}))
    by_name = {o.name: o for o in response.outputs}
    want = explain(bundle.scorer, bundle.card.schema, bundle.card.schema.encode(rows), 2)
    codes = by_name["reason_codes"].as_numpy()
    assert [c.decode() if isinstance(c, bytes) else c for c in codes.ravel()] == want.names.ravel().tolist()
    np.testing.assert_allclose(by_name["reason_contributions"].as_numpy(), want.values, atol=1e-5)
    model.stop()
