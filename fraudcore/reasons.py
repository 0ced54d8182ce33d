"""Reason codes: the features that pushed a score toward fraud the most, strongest first.

A scorer's `contributions` give each encoded feature's share of the log-odds (exact TreeSHAP for
XGBoost, coefficient times scaled input for the logistic model, one value per original feature
either way); this module ranks them. Serving, the audit log and the promotion gate all rank here.
"""

import reprlib
from dataclasses import dataclass

import numpy as np

from fraudcore.bundle import Scorer
from fraudcore.schema import Schema

DEFAULT_TOP_K = 4
"""Reasons per row unless asked otherwise: the US Regulation B convention of four."""
TOP_K_PARAMETER = "top_k"
"""The request parameter naming how many reasons to return per row."""


@dataclass(frozen=True)
class Reasons:
    """The top features of each row: names (object `[N, k]` of str) and their log-odds (float32 `[N, k]`).

    A row's names run from the strongest push toward fraud down; when fewer than k features push
    toward fraud, the rest follow with values ≤ 0 (they pulled toward legitimate)."""

    names: np.ndarray
    values: np.ndarray

    def as_json(self) -> list[list[dict[str, str | float]]]:
        """Each row's reasons as `{"feature": name, "contribution": log-odds}` objects, strongest first
        (the v1 explanation of an instance, and the audit log's `reasons`)."""
        return [
            [{"feature": name, "contribution": value} for name, value in zip(names, values, strict=True)]
            for names, values in zip(self.names.tolist(), self.values.tolist(), strict=True)
        ]


def top_reasons(contributions: np.ndarray, schema: Schema, k: int) -> Reasons:
    """Rank a scorer's `[N, features + 1]` contributions (the bias last, never a reason)."""
    features = contributions[:, : len(schema)]
    order = np.argsort(-features, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(features, order, axis=1).astype(np.float32, copy=False)
    return Reasons(np.asarray(schema.names, object)[order], values)


def explain(scorer: Scorer, schema: Schema, x: np.ndarray, k: int = DEFAULT_TOP_K) -> Reasons:
    """The top `k` reasons of each row of the encoded matrix `x`."""
    return top_reasons(scorer.contributions(x), schema, min(k, len(schema)))


def top_k_of(value: object, schema: Schema) -> int:
    """A requested `top_k` checked against the schema (ValueError naming the problem); None means the
    default, or every feature when the model has fewer."""
    if value is None:
        return min(DEFAULT_TOP_K, len(schema))
    if type(value) is not int or not 1 <= value <= len(schema):
        raise ValueError(
            f"parameter {TOP_K_PARAMETER!r} must be a whole number from 1 to {len(schema)} (the model's "
            f"feature count), not {reprlib.repr(value)}"
        )
    return value


def top_changes(first: Reasons, second: Reasons) -> float:
    """The share of rows whose strongest reason differs between two rankings of the same rows."""
    if not len(first.names):
        return 0.0
    return float(np.mean(first.names[:, 0] != second.names[:, 0]))
