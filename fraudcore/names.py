"""Names other programs rely on, each written once: model URIs, roles and aliases, registry tags,
and the environment and annotation keys the chart puts on the cluster's objects."""

import re
from typing import Literal

Role = Literal["champion", "challenger"]
CHAMPION: Role = "champion"
CHALLENGER: Role = "challenger"
ROLES: tuple[Role, Role] = (CHAMPION, CHALLENGER)
"""The two roles of the canary; also the registry aliases that point at their versions."""
SHADOW = "shadow"
"""The role of the requests the route mirrors to the challenger (answered, never seen by a client):
the role label of their audit rows, metric series and log lines."""

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
"""`models:/<name>/<version>` or `models:/<name>@<alias>`."""


def version_uri(name: str, version: str | int) -> str:
    """The URI of one registered version: `models:/<name>/<version>`."""
    return f"models:/{name}/{version}"


def alias_uri(name: str, alias: str) -> str:
    """The URI of the version an alias points at: `models:/<name>@<alias>`."""
    return f"models:/{name}@{alias}"


STATUS_TAG, REASON_TAG = "validation_status", "validation_reason"
"""Model-version tags holding the validation gate's verdict and its reasons."""
TOP_REASON_TAG = "top_reason_changed"
"""How often the version's top reason code differed from the champion's when it was gated."""
RUN_TAG = "fraud.job"
"""Run tag naming the job that logged an MLflow run (`drift`, `retrain`)."""

URI_ENV, ROLE_ENV = "FRAUD_MODEL_URI", "FRAUD_MODEL_ROLE"
"""Predictor container environment variables the chart sets and the canary tooling patches."""
CHAMPION_ANNOTATION = "fraud-detection.io/champion-version"
CHALLENGER_ANNOTATION = "fraud-detection.io/challenger-version"
"""Knative mode: annotations on the single InferenceService holding both roles' versions."""
