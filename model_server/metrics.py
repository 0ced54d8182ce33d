"""Prometheus metrics of the predictor, each labelled by `model_version` and `role`.

The role is the predictor's, or `shadow` for the requests the route mirrors to it: those have
series of their own. The Helm chart's alerts and dashboard use these names. The server runs one
worker per pod, so the default registry (which KServe's `/metrics` serves) holds the whole
process's numbers.
"""

import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LABELS = ("model_version", "role")
SCORE_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    1.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Fine below 30 ms, where the p99s of two roles are compared."""

PREDICTIONS = Counter("fraud_predictions", "Scored transactions by decision.", ("decision", *LABELS))
BATCH_SIZE = Histogram("fraud_batch_size", "Rows per inference request.", LABELS, buckets=BATCH_BUCKETS)
REQUEST_SECONDS = Histogram(
    "fraud_request_seconds",
    "Seconds from a scoring request's arrival until its scores, per scored request.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
REJECTED = Counter("fraud_rejected_requests", "Requests refused, by reason.", ("reason", *LABELS))
UNKNOWN_CATEGORIES = Counter(
    "fraud_unknown_category",
    "Categorical values scored that are not among the categories seen in training, by feature.",
    ("feature", *LABELS),
)
MODEL_INFO = Gauge(
    "fraud_model_info", "The model this predictor serves (always 1).", (*LABELS, "kind", "threshold")
)


_SMALL = 16


class ScoreHistogram(Collector):
    """`fraud_score`: a histogram that takes a whole batch of scores in one numpy call."""

    def __init__(self, buckets: tuple[float, ...] = SCORE_BUCKETS) -> None:
        self._bounds = np.asarray(buckets, np.float64)
        self._bound_list = list(buckets)
        self._counts: dict[tuple[str, ...], np.ndarray] = {}
        self._sums: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def observe(self, labels: tuple[str, ...], scores: np.ndarray) -> None:
        if len(scores) <= _SMALL:  # a few rows: plain Python is cheaper than numpy's call overhead
            values = scores.tolist()
            index: Any = [bisect_left(self._bound_list, v) for v in values]
            total = sum(values)
        else:
            index = np.bincount(np.searchsorted(self._bounds, scores), minlength=len(self._bounds) + 1)
            total = float(scores.sum(dtype=np.float64))
        with self._lock:
            counts = self._counts.get(labels)
            if counts is None:
                counts = self._counts[labels] = np.zeros(len(self._bounds) + 1, np.int64)
                self._sums[labels] = 0.0
            if isinstance(index, list):
                for i in index:
                    counts[i] += 1
            else:
                counts += index
            self._sums[labels] += total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily("fraud_score", "Fraud probabilities returned.", labels=LABELS)
        with self._lock:
            series = [
                (labels, np.cumsum(c).tolist(), self._sums[labels]) for labels, c in self._counts.items()
            ]
        for labels, cumulative, total in series:
            les = [*map(floatToGoString, self._bounds), "+Inf"]
            family.add_metric(list(labels), list(zip(les, cumulative, strict=True)), total)
        yield family


SCORES = ScoreHistogram()
REGISTRY.register(SCORES)


class ModelMetrics:
    """The metric series of one served model version, bound once so a request costs a few calls."""

    def __init__(self, model_version: str, role: str) -> None:
        self.labels = (model_version, role)

    @cached_property
    def _series(self) -> tuple[Counter, Counter, Histogram, Histogram]:
        """Bound on first use, so a model (or role) that never scores exports no empty series."""
        return (
            PREDICTIONS.labels("fraud", *self.labels),
            PREDICTIONS.labels("legit", *self.labels),
            BATCH_SIZE.labels(*self.labels),
            REQUEST_SECONDS.labels(*self.labels),
        )

    def announce(self, kind: str, threshold: float) -> None:
        """Publish `fraud_model_info` for this version."""
        MODEL_INFO.labels(*self.labels, kind, f"{threshold:.6g}").set(1)

    def scored(self, scores: np.ndarray, decisions: np.ndarray, seconds: float) -> None:
        """Count one scored request: its rows by decision, its size, its scores and its latency."""
        fraud_series, legit_series, batch_series, seconds_series = self._series
        fraud = int(np.count_nonzero(decisions))
        if fraud:  # a single row is one or the other: one counter call, not two
            fraud_series.inc(fraud)
        if fraud < len(decisions):
            legit_series.inc(len(decisions) - fraud)
        batch_series.observe(len(decisions))
        seconds_series.observe(seconds)
        SCORES.observe(self.labels, scores)

    def unknown_categories(self, counts: Mapping[str, int]) -> None:
        """Count values of categorical features (by name) that the model has not seen in training."""
        for feature, count in counts.items():
            UNKNOWN_CATEGORIES.labels(feature, *self.labels).inc(count)

    def rejected(self, reason: str) -> None:
        REJECTED.labels(reason, *self.labels).inc()
