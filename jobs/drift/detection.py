"""Drift check: a window of scored transactions against the champion's reference sample.

Every feature and the champion's score (prediction drift) get a two-sample Kolmogorov-Smirnov test
(alibi-detect `KSDrift`); one multiple-testing correction (Bonferroni or FDR) covers the whole family
of 31 tests, so `drift_p_value` bounds the false-alarm rate of a check. The `classifier` detector
decides instead with alibi-detect's `ClassifierDrift` (a gradient-boosted domain classifier on the
same 31 columns), which also sees shifts in the joint distribution; the per-feature tests are still
reported. Labelled rows in the window add the champion's PR-AUC and recall there.
"""

import logging
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import numpy as np
from sklearn.metrics import average_precision_score

from fraudcore.errors import InvalidInputError
from fraudcore.registry import LoadedModel
from jobs.drift.window import Window

Detector = Literal["ks", "classifier"]
Correction = Literal["bonferroni", "fdr"]
SCORE = "score"
"""Name of the champion's score in the tested columns, after the 30 features."""


@dataclass(frozen=True)
class Test:
    """One two-sample test: its p-value, its statistic and whether it counts as drift."""

    p_value: float
    distance: float
    drifted: bool


@dataclass(frozen=True)
class Performance:
    """The champion on the labelled rows of the window, next to its holdout numbers from training."""

    labelled_rows: int
    fraud_rows: int
    pr_auc: float | None
    recall: float | None
    precision: float | None
    holdout_pr_auc: float
    holdout_recall: float


@dataclass(frozen=True)
class DriftResult:
    """Everything a drift check found; `to_dict()` is the JSON result."""

    detected: bool
    detector: Detector
    correction: Correction
    p_value: float
    threshold: float
    model: str
    model_version: str
    window: str
    window_rows: int
    reference_rows: int
    features: dict[str, Test]
    score: Test
    multivariate: Test | None
    performance: Performance | None
    ran_at: str

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, test in self.features.items() if test.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "drifted_features": self.drifted_features,
            "share_of_drifted_features": self.share_drifted,
        }


def detect_drift(
    model: LoadedModel,
    window: Window,
    *,
    correction: Correction,
    p_value: float,
    min_rows: int,
    detector: Detector = "ks",
) -> tuple[DriftResult, np.ndarray, np.ndarray]:
    """Test the window against the model's reference sample.

    Returns the result and the two tested matrices (reference and window, 30 features + score).
    """
    if len(window) == 0:
        raise InvalidInputError(f"the window is empty: no transactions in {window.source}")
    if len(window) < min_rows:
        raise InvalidInputError(
            f"the window has {len(window):,} rows, fewer than the {min_rows:,} a drift check needs "
            f"({window.source}); widen the window or lower FRAUD_DRIFT_MIN_ROWS"
        )
    bundle = model.bundle
    reference = bundle.reference()
    x_ref = np.column_stack([reference, bundle.scorer.predict_proba(reference)]).astype(np.float32)
    x = np.column_stack([window.features, bundle.scorer.predict_proba(window.features)]).astype(np.float32)

    _quiet_alibi_detect()
    from alibi_detect.cd import KSDrift  # heavy import, only where it is needed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = KSDrift(x_ref, p_val=p_value, correction=correction).predict(x)["data"]
    threshold = float(np.min(ks["threshold"]))
    flags = (ks["p_val"] < threshold) & bool(ks["is_drift"])
    tests = [
        Test(float(p), float(d), bool(f)) for p, d, f in zip(ks["p_val"], ks["distance"], flags, strict=True)
    ]
    multivariate = _classifier(x_ref, x, p_value) if detector == "classifier" else None
    detected = multivariate.drifted if multivariate else bool(ks["is_drift"])
    result = DriftResult(
        detected=detected,
        detector=detector,
        correction=correction,
        p_value=p_value,
        threshold=threshold,
        model=model.name,
        model_version=model.version,
        window=window.source,
        window_rows=len(window),
        reference_rows=len(reference),
        features=dict(zip(bundle.card.schema.names, tests[:-1], strict=True)),
        score=tests[-1],
        multivariate=multivariate,
        performance=_performance(model, window, x[:, -1]),
        ran_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return result, x_ref, x


@cache
def _quiet_alibi_detect() -> None:
    """alibi-detect imports transformers, which resets its own logger's level when imported: filter
    both loggers, once per process."""
    for noisy in ("alibi_detect", "transformers"):
        logging.getLogger(noisy).addFilter(lambda record: record.levelno >= logging.ERROR)


def _classifier(x_ref: np.ndarray, x: np.ndarray, p_value: float) -> Test:
    from alibi_detect.cd import ClassifierDrift
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = ClassifierDrift(x_ref, model, backend="sklearn", p_val=p_value).predict(x)["data"]
    return Test(float(found["p_val"]), float(found["distance"]), bool(found["is_drift"]))


def _performance(model: LoadedModel, window: Window, scores: np.ndarray) -> Performance | None:
    labelled = window.labelled
    if not labelled.any():
        return None
    y, s = window.labels[labelled], scores[labelled]
    flagged = model.bundle.decide(s)
    frauds, hits = int(y.sum()), int((flagged & (y == 1)).sum())
    holdout = model.bundle.card.metrics
    return Performance(
        labelled_rows=int(labelled.sum()),
        fraud_rows=frauds,
        pr_auc=float(average_precision_score(y, s)) if 0 < frauds < len(y) else None,
        recall=hits / frauds if frauds else None,
        precision=hits / int(flagged.sum()) if flagged.any() else None,
        holdout_pr_auc=float(holdout["pr_auc"]),
        holdout_recall=float(holdout["recall"]),
    )
