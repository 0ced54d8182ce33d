"""The validation gate a version must pass before an alias points at it."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fraudcore.bundle import Scorer
from fraudcore.errors import ExitCode, FraudError
from fraudcore.reasons import explain, top_changes
from fraudcore.schema import Schema
from fraudcore.settings import Settings
from training.evaluate import score_metrics


class GateRejectedError(FraudError):
    """A version failed the validation gate; it stays registered with the reasons recorded."""

    status_code = 422
    exit_code = ExitCode.REJECTED


@dataclass(frozen=True)
class GatePolicy:
    """Floors on the holdout and the largest regression against the champion allowed."""

    min_roc_auc: float
    min_pr_auc: float
    max_regression: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "GatePolicy":
        return cls(settings.gate_min_roc_auc, settings.gate_min_pr_auc, settings.gate_max_regression)


@dataclass(frozen=True)
class ReasonChange:
    """On the holdout rows the candidate flags: the share whose top reason code differs from the
    champion's. Informational: it never rejects a candidate."""

    share: float
    rows: int

    def __str__(self) -> str:
        return f"{self.share:.1%} of {self.rows} flagged"


@dataclass(frozen=True)
class GateResult:
    """The verdict with every reason it failed, the metrics it was based on and, when the champion
    has the same inputs, how stable the top reason code is."""

    reasons: tuple[str, ...]
    candidate: dict[str, float]
    champion: dict[str, float] | None
    reason_change: ReasonChange | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        return "passed" if self.passed else "; ".join(self.reasons)


def gate_verdict(
    y_holdout: np.ndarray,
    candidate_scores: np.ndarray,
    candidate_threshold: float,
    policy: GatePolicy,
    champion_scores: np.ndarray | None = None,
    champion_threshold: float = 0.5,
    input_differences: Sequence[str] = (),
    reason_change: ReasonChange | None = None,
) -> GateResult:
    """Judge a candidate on a holdout, against the champion's scores on the very same rows.

    `input_differences` are the ways requests in the champion's format would fail on the candidate:
    any of them rejects it (clients send one format through the traffic split)."""
    if not np.all(np.isfinite(candidate_scores)) or not np.all(
        (candidate_scores >= 0) & (candidate_scores <= 1)
    ):
        return GateResult(("scores are not all finite probabilities in [0, 1]",), {}, None)
    candidate = score_metrics(y_holdout, candidate_scores, candidate_threshold)
    reasons = []
    if input_differences:
        reasons.append(f"its inputs differ from the champion's: {'; '.join(input_differences)}")
    if candidate["roc_auc"] < policy.min_roc_auc:
        reasons.append(f"ROC-AUC {candidate['roc_auc']:.4f} is below the floor {policy.min_roc_auc:.2f}")
    if candidate["pr_auc"] < policy.min_pr_auc:
        reasons.append(f"PR-AUC {candidate['pr_auc']:.4f} is below the floor {policy.min_pr_auc:.2f}")
    champion = None
    if champion_scores is not None:
        champion = score_metrics(y_holdout, champion_scores, champion_threshold)
        for key, label in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")):
            drop = champion[key] - candidate[key]
            if drop > policy.max_regression:
                reasons.append(
                    f"{label} {candidate[key]:.4f} is {drop:.4f} below the champion's "
                    f"{champion[key]:.4f} (tolerance {policy.max_regression:.2f})"
                )
    return GateResult(tuple(reasons), candidate, champion, reason_change)


def top_reason_change(
    candidate: Scorer, candidate_x: np.ndarray, champion: Scorer, champion_x: np.ndarray, schema: Schema
) -> ReasonChange:
    """Compare the top reason of the same rows, encoded for each model (their schemas have the same
    features: categories may differ, so each encodes the rows itself)."""
    first = explain(candidate, schema, candidate_x, 1)
    second = explain(champion, schema, champion_x, 1)
    return ReasonChange(top_changes(first, second), len(candidate_x))
