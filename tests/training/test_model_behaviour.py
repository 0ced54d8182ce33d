"""Model-behaviour tests: trained models react to known fraud signals the right way."""

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from fraudcore.bundle import load_bundle
from fraudcore.registry import Registry
from tests.conftest import TrainedStore
from training.synthetic import FEATURES, LABEL

COLUMN = {name: i for i, name in enumerate(FEATURES)}


@pytest.fixture(scope="module", params=["champion", "challenger"])
def loaded(request: pytest.FixtureRequest, trained_store: TrainedStore):
    return Registry(trained_store.settings).load(f"models:/fraud-detector@{request.param}")


@pytest.fixture(scope="module")
def legit_rows(trained_store: TrainedStore) -> np.ndarray:
    frame = trained_store.frame
    return frame[frame[LABEL] == 0][list(FEATURES)].head(2_000).to_numpy(np.float32)


def test_scores_are_probabilities(loaded, legit_rows: np.ndarray) -> None:
    scores = loaded.bundle.scorer.predict_proba(legit_rows)
    assert scores.dtype == np.float32 and scores.shape == (len(legit_rows),)
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize(("feature", "direction"), [("V14", -1), ("V12", -1), ("V4", +1)])
def test_known_fraud_signals_raise_the_score(loaded, legit_rows, feature: str, direction: int) -> None:
    shifted = legit_rows.copy()
    shifted[:, COLUMN[feature]] += direction * 6.0
    scorer = loaded.bundle.scorer
    before, after = scorer.predict_proba(legit_rows), scorer.predict_proba(shifted)
    # What the model must show, not how much: moving a transaction toward fraud raises its score for
    # clearly more rows than it lowers it (a sign test; a model without the signal scores p ~ 0.5).
    # Trees saturate past the training range, so some rows barely move and the size of the rise
    # is not a property of the model.
    rises, falls = int((after > before).sum()), int((after < before).sum())
    assert binomtest(rises, rises + falls, alternative="greater").pvalue < 1e-6, (rises, falls)
    assert after.mean() > before.mean()


def test_most_legit_traffic_is_not_flagged(loaded, legit_rows) -> None:
    flagged = loaded.bundle.decide(loaded.bundle.scorer.predict_proba(legit_rows))
    # The cost-chosen threshold follows ~100 validation frauds: a few % of false alarms, not tens.
    assert flagged.mean() < 0.05


def test_the_same_hour_a_day_later_keeps_the_decisions(loaded, legit_rows) -> None:
    later = legit_rows.copy()
    later[:, COLUMN["Time"]] += 86_400.0
    bundle = loaded.bundle
    before = bundle.decide(bundle.scorer.predict_proba(legit_rows))
    flips = bundle.decide(bundle.scorer.predict_proba(later)) != before
    assert flips.mean() < 0.01


def test_bundle_reloads_with_identical_scores(loaded, legit_rows) -> None:
    again = load_bundle(loaded.bundle.path)
    np.testing.assert_array_equal(
        again.scorer.predict_proba(legit_rows), loaded.bundle.scorer.predict_proba(legit_rows)
    )
    assert again.card.threshold == loaded.bundle.card.threshold
    assert again.reference().shape[1] == len(FEATURES)


def test_generic_mlflow_pyfunc_loading_gives_the_same_scores(trained_store: TrainedStore, legit_rows) -> None:
    mlflow.set_tracking_uri(trained_store.settings.resolved_tracking_uri)
    model = mlflow.pyfunc.load_model("models:/fraud-detector@challenger")
    frame = pd.DataFrame(legit_rows[:50], columns=list(FEATURES))
    native = Registry(trained_store.settings).load("models:/fraud-detector@challenger").bundle
    np.testing.assert_allclose(model.predict(frame), native.scorer.predict_proba(legit_rows[:50]), atol=1e-7)
