"""Windows in a model's schema: rows logged by the predictor come back from PostgreSQL with the values
sent (an unknown category and a missing value included), CSV files read the same way, and replayed
traffic carries one tensor per feature."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fraudcore.schema import Feature, Schema
from jobs.drift.window import UNLABELLED, from_audit_log, from_csv
from jobs.feedback.labels import ingest
from jobs.feedback.traffic import send
from tests.conftest import make_settings
from tests.pg import log_traffic

SCHEMA = Schema(
    (
        Feature("amount"),
        Feature("channel", "categorical", ("atm", "pos")),
        Feature("country", "categorical", ("DE", "FR"), optional=True),
        Feature("card_present", "boolean", optional=True),
        Feature("tip", optional=True),
    ),
    label="fraud",
)
SENT = pd.DataFrame(
    {
        "amount": [12.34, 0.1, 3.0, 1500.5],
        "channel": ["atm", "app", "pos", "app"],  # "app": a category the model never saw
        "country": ["FR", None, "DE", "NL"],
        "card_present": [True, None, False, True],
        "tip": [np.nan, 1.5, np.nan, 0.25],
        "fraud": [0, 1, 0, 1],
    }
)


def by_amount(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("amount", ignore_index=True)


def test_audit_rows_come_back_as_sent(audit_dsn: str, tmp_path: Path) -> None:
    labels = log_traffic(audit_dsn, SENT, SCHEMA, batch=3)
    settings = make_settings(tmp_path / ".fraud", audit_dsn=audit_dsn)
    labels[labels["row"] != 2].to_csv(tmp_path / "labels.csv", index=False)  # the third stays unlabelled
    assert ingest(settings, tmp_path / "labels.csv").labelled_rows == 3

    window = from_audit_log(settings, SCHEMA, rows=10, since=timedelta(hours=1))
    assert (len(window), window.source) == (4, "audit log (last 10 rows of the last 1h)")
    pd.testing.assert_frame_equal(by_amount(window.frame), by_amount(SENT.drop(columns="fraud")))
    np.testing.assert_array_equal(window.features, SCHEMA.encode(window.frame))
    assert np.isnan(window.features[window.frame["channel"] == "app", 1]).all()
    assert sorted(window.labels.tolist()) == [UNLABELLED, 0, 1, 1]

    expected = by_amount(SENT.drop(index=2).reset_index(drop=True))
    pd.testing.assert_frame_equal(by_amount(window.labelled_frame()), expected)
    only = from_audit_log(settings, SCHEMA, rows=10, labelled_only=True)
    pd.testing.assert_frame_equal(by_amount(only.labelled_frame()), expected)


def test_rows_of_another_schema_are_left_out(audit_dsn: str, tmp_path: Path) -> None:
    log_traffic(audit_dsn, SENT, SCHEMA)
    other = Schema((Feature("amount"), Feature("merchant", "categorical", ("a",))), label="fraud")
    log_traffic(audit_dsn, SENT.assign(merchant="a"), other)
    settings = make_settings(tmp_path / ".fraud", audit_dsn=audit_dsn)
    assert len(from_audit_log(settings, other, rows=100)) == 4  # the rows without `merchant` do not fit
    assert len(from_audit_log(settings, SCHEMA, rows=100)) == 4  # nor those without `channel`
    assert len(from_audit_log(settings, SCHEMA, rows=3)) == 3


def test_csv_window_in_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "window.csv"
    SENT.assign(extra="ignored").to_csv(path, index=False)
    window = from_csv(path, SCHEMA)
    pd.testing.assert_frame_equal(window.labelled_frame(), SENT)
    SENT.drop(columns="fraud").to_csv(path, index=False)
    unlabelled = from_csv(path, SCHEMA)
    assert (unlabelled.labels == UNLABELLED).all()
    assert unlabelled.labelled_frame().empty


class Predictor(BaseHTTPRequestHandler):
    """Answers every v2 request with `is_fraud` false and keeps the bodies it received."""

    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        rows = body["inputs"][0]["shape"][0]
        answer = json.dumps({"outputs": [{"name": "is_fraud", "datatype": "BOOL", "data": [False] * rows}]})
        self.send_response(200)
        self.send_header("x-model-version", "7")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def predictor() -> Iterator[str]:
    Predictor.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Predictor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_replay_sends_one_tensor_per_feature_of_raw_values(tmp_path: Path, predictor: str) -> None:
    path = tmp_path / "window.csv"
    SENT.to_csv(path, index=False)
    sent, labels = send(from_csv(path, SCHEMA), predictor, "fraud", batch_rows=3, prefix="t")
    assert (sent.requests, sent.rows, sent.flagged, dict(sent.versions)) == (2, 4, 0, {"7": 2})
    assert labels.to_dict("list") == {"request_id": ["t-000000"] * 3 + ["t-000001"], "row": [0, 1, 2, 0],
                                      "label": [0, 1, 0, 1]}  # fmt: skip
    first = Predictor.received[0]["inputs"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in first] == [
        ("amount", "FP64", [3]),
        ("channel", "BYTES", [3]),
        ("country", "BYTES", [3]),
        ("card_present", "BOOL", [3]),
        ("tip", "FP64", [3]),
    ]
    assert [t["data"] for t in first] == [
        [12.34, 0.1, 3.0],
        ["atm", "app", "pos"],
        ["FR", None, "DE"],
        [True, None, False],
        [None, 1.5, None],
    ]
