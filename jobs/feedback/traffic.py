"""Replay transactions against a running predictor (Open Inference Protocol v2), as a client would.

Each batch is one request with its own `x-request-id` and one `[N]` tensor per feature of the
window's schema, made from the raw values (a category as text, unknown to the model or not; a
missing value as null). When the data carries the schema's label, the matching label file rows
(`request_id,row,label`) come back too: the ground truth a bank learns weeks later, ready for
`fraud labels ingest`.
"""

import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudcore.errors import InvalidInputError, UnavailableError
from fraudcore.schema import Feature
from jobs.drift.window import Window

DATATYPES = {"numeric": "FP64", "categorical": "BYTES", "boolean": "BOOL"}
"""The v2 datatype each kind of feature is sent as."""


@dataclass
class Sent:
    """What the predictor answered: rows scored, rows flagged, and which versions answered how often."""

    requests: int = 0
    rows: int = 0
    flagged: int = 0
    versions: Counter[str] = field(default_factory=Counter)


def send(
    window: Window,
    url: str,
    model: str,
    batch_rows: int,
    prefix: str,
    token: str | None = None,
    timeout_s: float = 30.0,
) -> tuple[Sent, pd.DataFrame]:
    """Score the window batch by batch; returns the tally and the label rows of labelled data."""
    endpoint = f"{url.rstrip('/')}/v2/models/{model}/infer"
    sent, labels = Sent(), []
    for start in range(0, len(window), batch_rows):
        rows = window.frame.iloc[start : start + batch_rows]
        request_id = f"{prefix}-{start // batch_rows:06d}"
        body = {"inputs": [_tensor(f, rows[f.name]) for f in window.schema.features]}
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(endpoint, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                answer = json.load(response)
                version = response.headers.get("x-model-version", "?")
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:200]
            raise InvalidInputError(f"{endpoint} answered HTTP {e.code}: {detail}") from e
        except (urllib.error.URLError, OSError) as e:
            raise UnavailableError(f"predictor at {endpoint} unreachable: {e}") from e
        decisions = next(o["data"] for o in answer["outputs"] if o["name"] == "is_fraud")
        sent.requests += 1
        sent.rows += len(rows)
        sent.flagged += int(np.sum(decisions))
        sent.versions[version] += 1
        known = window.labelled[start : start + batch_rows]
        labels += [
            (request_id, row, int(label))
            for row, (label, is_known) in enumerate(
                zip(window.labels[start : start + batch_rows], known, strict=True)
            )
            if is_known
        ]
    return sent, pd.DataFrame(labels, columns=["request_id", "row", "label"])


def _tensor(feature: Feature, values: pd.Series) -> dict[str, object]:
    """One feature's raw values as a v2 input tensor (null where the value is missing)."""
    data = values.astype(object).where(values.notna(), None).tolist()
    if feature.kind == "boolean":
        data = [None if value is None else bool(value) for value in data]
    return {"name": feature.name, "shape": [len(data)], "datatype": DATATYPES[feature.kind], "data": data}
