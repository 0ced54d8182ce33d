"""A model of a made-up schema, trained here from a CSV and served as a real process: a numeric, a
categorical, a boolean and an optional feature, and a label not called `Class`. v2 JSON with BYTES
and BOOL tensors, v2 binary (tritonclient), v1 dicts, metadata and /docs from the schema, unknown
categories scored and counted, and mistakes answered 400 naming the feature."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import pytest
import tritonclient.http as triton

from fraudcore import auditdb
from fraudcore.bundle import Bundle
from fraudcore.registry import Registry
from fraudcore.schema import Schema
from jobs.drift.window import from_audit_log
from tests.conftest import make_settings
from tests.model_server.test_server import MODEL, launch, metric_samples, sample, server_env
from tests.pg import Postgres
from tests.support import ServerProcess, running
from training.pipeline import train_and_register
from training.train import TrainConfig

LABEL = "chargeback"
INFER = f"/v2/models/{MODEL}/infer"
PREDICT = f"/v1/models/{MODEL}:predict"


def transactions(rows: int, seed: int) -> pd.DataFrame:
    """Card payments whose chargebacks follow the channel, card presence and amount; a fifth of the
    account ages are unknown (blank in the CSV)."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["atm", "pos", "web"], rows)
    present = rng.random(rows) < 0.6
    amount = rng.gamma(2.0, 60.0, rows).round(2)
    age = rng.integers(1, 3000, rows).astype(np.float64)
    age[rng.random(rows) < 0.2] = np.nan
    risk = 1.5 * (channel == "web") + 1.5 * ~present + 2.0 * (amount > 200) + rng.normal(0, 0.5, rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "channel": channel,
            "card_present": np.where(present, "true", "false"),
            "account_age_days": age,
            LABEL: (risk > 4.5).astype(int),
        }
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres
) -> Iterator[tuple[ServerProcess, Bundle]]:
    """The predictor serving an XGBoost model trained on `transactions` (audit log on, in a fresh
    table), and that model's bundle."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {auditdb.TABLE}")
    work = tmp_path_factory.mktemp("any-schema")
    data = work / "transactions.csv"
    transactions(4000, seed=3).to_csv(data, index=False)
    settings = make_settings(work / ".fraud")
    registry = Registry(settings)
    config = TrainConfig.from_settings(settings, "xgboost", rounds=40, seed=1)
    version = train_and_register(registry, config, str(data), LABEL).version
    uri = f"models:/{MODEL}/{version}"
    env = server_env(
        settings.home, FRAUD_MODEL_URI=uri, FRAUD_MAX_BATCH_ROWS="500", FRAUD_AUDIT_DSN=postgres.dsn
    )
    server = launch(work, env)
    with running(server):
        yield server.wait(), registry.load(uri).bundle


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return transactions(12, seed=11).drop(columns=LABEL)


def columns(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON tensor per feature: FP64 numbers, BYTES strings, BOOL, FP32 with null where missing."""
    data = {
        "amount": ("FP64", rows["amount"].tolist()),
        "channel": ("BYTES", rows["channel"].tolist()),
        "card_present": ("BOOL", (rows["card_present"] == "true").tolist()),
        "account_age_days": ("FP32", [None if np.isnan(a) else a for a in rows["account_age_days"]]),
    }
    return [{"name": k, "shape": [len(rows)], "datatype": t, "data": v} for k, (t, v) in data.items()]


def scores_of(reply: httpx.Response) -> list[float]:
    assert reply.status_code == 200, reply.text
    return next(o["data"] for o in reply.json()["outputs"] if o["name"] == "fraud_probability")


def test_v2_json_bytes_and_bool(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, bundle = served
    x = bundle.card.schema.encode(rows)
    reply = httpx.post(server.url + INFER, json={"inputs": columns(rows)})
    np.testing.assert_allclose(scores_of(reply), bundle.scorer.predict_proba(x), atol=1e-6)
    assert reply.headers["x-model-version"] == "1"
    without_optional = httpx.post(server.url + INFER, json={"inputs": columns(rows)[:3]})
    x[:, 3] = np.nan
    np.testing.assert_allclose(scores_of(without_optional), bundle.scorer.predict_proba(x), atol=1e-6)


def test_v2_binary_bytes_with_tritonclient(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, bundle = served
    values = {
        "amount": ("FP32", rows["amount"].to_numpy(np.float32)),
        "channel": ("BYTES", rows["channel"].to_numpy(object)),
        "card_present": ("BOOL", (rows["card_present"] == "true").to_numpy()),
        "account_age_days": ("FP32", rows["account_age_days"].to_numpy(np.float32)),  # NaN: missing
    }
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    tensors = []
    for name, (datatype, array) in values.items():
        tensors.append(triton.InferInput(name, [len(rows)], datatype))
        tensors[-1].set_data_from_numpy(array, binary_data=True)
    outputs = [triton.InferRequestedOutput("fraud_probability", binary_data=True)]
    result = client.infer(MODEL, tensors, outputs=outputs)
    client.close()
    want = bundle.scorer.predict_proba(bundle.card.schema.encode(rows))
    np.testing.assert_allclose(result.as_numpy("fraud_probability"), want, atol=1e-6)


def test_v1_dicts_with_strings(served: tuple[ServerProcess, Bundle], rows: pd.DataFrame) -> None:
    server, bundle = served
    instances = [
        {"amount": r.amount, "channel": r.channel, "card_present": r.card_present == "true"}
        | ({} if np.isnan(r.account_age_days) else {"account_age_days": r.account_age_days})
        for r in rows.itertuples()
    ]
    reply = httpx.post(server.url + PREDICT, json={"instances": instances})
    assert reply.status_code == 200, reply.text
    got = [p["fraud_probability"] for p in reply.json()["predictions"]]
    want = bundle.scorer.predict_proba(bundle.card.schema.encode(rows))
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_metadata_and_docs_describe_the_schema(served: tuple[ServerProcess, Bundle]) -> None:
    server, bundle = served
    meta = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
    assert meta["inputs"] == [
        {"name": "amount", "datatype": "FP32", "shape": [-1]},
        {"name": "channel", "datatype": "BYTES", "shape": [-1]},
        {"name": "card_present", "datatype": "BOOL", "shape": [-1]},
        {"name": "account_age_days", "datatype": "FP32", "shape": [-1]},
    ]
    schema = meta["parameters"]["schema"]
    assert Schema.from_dict(schema) == bundle.card.schema and schema["label"] == LABEL
    assert schema["features"][1]["categories"] == ["atm", "pos", "web"]
    components = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]
    instance = components["V1Request"]["properties"]["instances"]["items"]
    assert instance["properties"]["channel"] == {"type": "string"}
    assert instance["required"] == ["amount", "channel", "card_present"]
    described = components["InferenceRequest"]["properties"]["inputs"]["items"]["description"]
    assert "channel (BYTES)" in described and "account_age_days (FP32, optional)" in described
    messages = [r["message"] for r in server.log_records()]
    # Categorical splits and missing values convert: small batches are scored by ONNX Runtime.
    assert any("scored by ONNX Runtime" in m for m in messages)


def test_unknown_category_is_scored_and_counted(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame
) -> None:
    server, bundle = served
    sent = rows[:3].assign(channel=["kiosk", "web", "crypto"])
    before = sample(metric_samples(server.url), "fraud_unknown_category_total", feature="channel")
    reply = httpx.post(server.url + INFER, json={"inputs": columns(sent)})
    x = bundle.card.schema.encode(sent)
    assert np.isnan(x[[0, 2], 1]).all()
    np.testing.assert_allclose(scores_of(reply), bundle.scorer.predict_proba(x), atol=1e-6)
    after = metric_samples(server.url)
    labels = {"feature": "channel", "model_version": "1", "role": "champion"}
    assert sample(after, "fraud_unknown_category_total", **labels) == before + 2


def test_the_audit_log_keeps_what_was_sent(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame, postgres: Postgres
) -> None:
    server, bundle = served
    sent = rows[:2].assign(channel=["audit-kiosk", "web"], account_age_days=[np.nan, 12.0])
    reply = httpx.post(server.url + INFER, json={"inputs": columns(sent)}, headers={"x-request-id": "kept"})
    assert reply.status_code == 200, reply.text
    settings = make_settings(server.log.parent / ".audit", audit_dsn=postgres.dsn)

    deadline = time.monotonic() + 30
    while "audit-kiosk" not in set(
        (frame := from_audit_log(settings, bundle.card.schema, 10_000).frame)["channel"]
    ):
        assert time.monotonic() < deadline, "the request did not reach the audit log"
        time.sleep(0.2)
    kept = frame[frame["channel"] == "audit-kiosk"].iloc[0]  # a category unknown to the model, as sent
    assert kept["amount"] == pytest.approx(sent["amount"].iloc[0], rel=1e-6)
    assert kept["card_present"] == (sent["card_present"].iloc[0] == "true")
    assert pd.isna(kept["account_age_days"])


def _replace(rows: pd.DataFrame, name: str, **change: Any) -> dict[str, Any]:
    """The columnar body of `rows` with input `name` changed (no change given: left out)."""
    inputs = [t | change if t["name"] == name else t for t in columns(rows) if t["name"] != name or change]
    return {"inputs": inputs}


MISTAKES: list[tuple[str, str, dict[str, Any], str]] = [
    ("missing required", "channel", {}, "missing feature(s): channel"),
    ("text in numeric", "amount", {"data": ["a lot"] * 2}, "input 'amount': values must be numbers only"),
    ("FP32 categorical", "channel", {"datatype": "FP32", "data": [1.0, 2.0]},
     "input 'channel' has datatype FP32, but feature channel is categorical: send BYTES"),
    ("BYTES numeric", "amount", {"datatype": "BYTES"}, "feature amount is numeric: send numbers"),
    ("BOOL not boolean", "card_present", {"data": ["yes", "no"]}, "input 'card_present': BOOL values"),
    ("null required", "amount", {"data": [None, 1.0]}, "no value (null or NaN) in row 0 of required feature"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "change", "message"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_v2_mistakes_name_the_feature(
    served: tuple[ServerProcess, Bundle], rows: pd.DataFrame, name: str, change: dict[str, Any], message: str
) -> None:
    reply = httpx.post(served[0].url + INFER, json=_replace(rows[:2], name, **change))
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text


def test_shapes_and_v1_mistakes_name_the_problem(served: tuple[ServerProcess, Bundle]) -> None:
    server = served[0]
    matrix = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 0.0, 1.0, 5.0]}
    text = {"amount": "many", "channel": "web", "card_present": True}
    bodies = {
        "expected [N], one tensor per feature": (INFER, {"inputs": [matrix]}),
        "lists of values are not accepted": (PREDICT, {"instances": [[1, 0, 1, 5]]}),
        "feature 'amount': values must be numbers only": (PREDICT, {"instances": [text]}),
        "instance 0: missing feature(s) card_present": (
            PREDICT,
            {"instances": [{"amount": 1, "channel": "web"}]},
        ),
    }
    for message, (path, body) in bodies.items():
        reply = httpx.post(server.url + path, json=body)
        assert reply.status_code == 400 and message in reply.json()["error"], reply.text
    assert not [r for r in server.log_records() if r.get("status", 0) >= 500 or "exception" in r]
