"""Model quality: ranking metrics, the cost-based decision threshold, metrics at that threshold."""

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

from fraudcore.errors import InvalidInputError


def choose_threshold(
    y_true: np.ndarray, scores: np.ndarray, cost_missed_fraud: float, cost_false_alarm: float
) -> float:
    """The score cut-off with the lowest total cost: missed frauds plus false alarms.

    Every distinct score is a candidate; flagging everything at or above it costs
    `false_alarms * cost_false_alarm + missed * cost_missed_fraud`.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], y_true[order]
    flagged_fraud = np.cumsum(sorted_labels)
    flagged_legit = np.cumsum(1 - sorted_labels)
    # Only cut where the score changes, so tied scores fall on the same side.
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    missed = sorted_labels.sum() - flagged_fraud[last_of_tie]
    cost = missed * cost_missed_fraud + flagged_legit[last_of_tie] * cost_false_alarm
    flag_nothing = sorted_labels.sum() * cost_missed_fraud
    best = int(np.argmin(cost))
    if cost[best] >= flag_nothing:
        return float(np.nextafter(sorted_scores[0], np.inf))
    return float(sorted_scores[last_of_tie][best])


def score_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC and precision/recall/F1 at the threshold."""
    if len(np.unique(y_true)) < 2:
        raise InvalidInputError("metrics need both fraud and legitimate rows in the evaluation set")
    predicted = scores >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, average="binary", zero_division=0
    )
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "pr_auc": float(average_precision_score(y_true, scores)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "flagged_rate": float(predicted.mean()),
    }
