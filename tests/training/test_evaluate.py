"""Threshold choice and metrics."""

import numpy as np
import pytest

from fraudcore.errors import InvalidInputError
from training.evaluate import choose_threshold, score_metrics


def test_threshold_minimises_total_cost() -> None:
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    # Flagging >= 0.5 costs one false alarm (0.6); flagging >= 0.7 misses the fraud at 0.5.
    assert choose_threshold(y, s, cost_missed_fraud=10, cost_false_alarm=1) == 0.5
    assert choose_threshold(y, s, cost_missed_fraud=1, cost_false_alarm=10) == 0.7


def test_expensive_misses_lower_the_threshold() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(5_000) < 0.05).astype(int)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    cheap = choose_threshold(y, s, cost_missed_fraud=2, cost_false_alarm=1)
    dear = choose_threshold(y, s, cost_missed_fraud=200, cost_false_alarm=1)
    assert dear < cheap


def test_ties_fall_on_the_same_side() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.8, 0.8, 0.2, 0.2])
    threshold = choose_threshold(y, s, cost_missed_fraud=5, cost_false_alarm=1)
    assert threshold in (0.8, 0.2)


def test_when_flagging_never_pays_nothing_is_flagged() -> None:
    y = np.array([0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.1, 0.7])
    threshold = choose_threshold(y, s, cost_missed_fraud=1, cost_false_alarm=100)
    assert (s >= threshold).sum() == 0


def test_metrics_at_threshold() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.6, 0.4, 0.9])
    m = score_metrics(y, s, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["flagged_rate"] == pytest.approx(0.5)


def test_metrics_need_both_classes() -> None:
    with pytest.raises(InvalidInputError, match="both fraud and legitimate"):
        score_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), 0.5)
