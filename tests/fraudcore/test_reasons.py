"""Reason codes from both model kinds, trained here on a schema with a categorical, a boolean and an
optional feature: contributions add up to the log-odds, one reason per original feature, and a row
pushed far along a fraud signal names it first."""

import numpy as np
import pandas as pd
import pytest

from fraudcore.bundle import Scorer
from fraudcore.reasons import DEFAULT_TOP_K, explain, top_k_of
from fraudcore.schema import Schema
from tests.conftest import make_settings
from tests.model_server.test_any_schema import LABEL, transactions
from training.data import infer_schema, split, validate
from training.train import FITTERS, TrainConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Schema, pd.DataFrame, dict[str, Scorer]]:
    frame = transactions(4000, seed=5)
    schema = infer_schema(frame, LABEL, None, "transactions")
    parts = split(validate(frame, schema, "transactions"), schema)
    settings = make_settings(tmp_path_factory.mktemp("reasons") / ".fraud")
    scorers = {
        kind: fit(parts, TrainConfig.from_settings(settings, kind, rounds=40, seed=1))
        for kind, fit in FITTERS.items()
    }
    return schema, transactions(300, seed=6).drop(columns=LABEL), scorers


def encoded(schema: Schema, rows: pd.DataFrame) -> np.ndarray:
    """The rows encoded, with some optional values missing and some categories unknown."""
    x = schema.encode(rows)
    x[::5, schema.positions["account_age_days"]] = np.nan
    x[::7, schema.positions["channel"]] = np.nan
    return x


@pytest.mark.parametrize("kind", sorted(FITTERS))
def test_contributions_and_bias_add_up_to_the_log_odds(data: tuple, kind: str) -> None:
    schema, rows, scorers = data
    x = encoded(schema, rows)
    contributions = scorers[kind].contributions(x)
    assert contributions.shape == (len(x), len(schema) + 1)
    assert contributions.dtype == np.float32
    p = scorers[kind].predict_proba(x).astype(np.float64)
    readable = (p > 1e-4) & (p < 1 - 1e-4)  # float32 probabilities saturate near 0 and 1
    assert readable.sum() > len(x) // 2
    logit = np.log(p / (1 - p))
    np.testing.assert_allclose(contributions.sum(axis=1)[readable], logit[readable], atol=2e-3)


@pytest.mark.parametrize("kind", sorted(FITTERS))
def test_one_reason_per_original_feature(data: tuple, kind: str) -> None:
    schema, rows, scorers = data
    reasons = explain(scorers[kind], schema, encoded(schema, rows), len(schema))
    assert reasons.names.shape == reasons.values.shape == (len(rows), len(schema))
    for names, values in zip(reasons.names.tolist(), reasons.values.tolist(), strict=True):
        assert sorted(names) == sorted(schema.names)  # channel once, however many one-hot columns
        assert values == sorted(values, reverse=True)


def test_missing_values_contribute_nothing_to_the_logistic_model(data: tuple) -> None:
    schema, rows, scorers = data
    x = encoded(schema, rows)
    contributions = scorers["logistic"].contributions(x)
    for name in ("account_age_days", "channel"):
        column = schema.positions[name]
        assert np.all(contributions[np.isnan(x[:, column]), column] == 0)


@pytest.mark.parametrize("kind", sorted(FITTERS))
def test_a_strongly_shifted_fraud_signal_is_named_first(data: tuple, kind: str) -> None:
    """Chargebacks follow large amounts: a card-present point-of-sale payment of a huge amount."""
    schema, _, scorers = data
    calm = pd.DataFrame(
        {"amount": [25.0], "channel": ["pos"], "card_present": ["true"], "account_age_days": [900.0]}
    )
    shifted = calm.assign(amount=[5000.0])
    before = explain(scorers[kind], schema, schema.encode(calm))
    after = explain(scorers[kind], schema, schema.encode(shifted))
    assert after.names[0, 0] == "amount"
    assert after.values[0, 0] > 0
    assert after.values[0, 0] > before.values[0, list(before.names[0]).index("amount")]
    assert after.names.shape == (1, min(DEFAULT_TOP_K, len(schema)))


def test_top_k_is_checked_against_the_schema(data: tuple) -> None:
    schema = data[0]
    assert top_k_of(None, schema) == min(DEFAULT_TOP_K, len(schema))
    assert top_k_of(2, schema) == 2
    for wrong in (0, len(schema) + 1, "2", 2.5, True):
        with pytest.raises(ValueError, match="'top_k' must be a whole number from 1 to 4"):
            top_k_of(wrong, schema)


@pytest.mark.parametrize("kind", sorted(FITTERS))
def test_no_rows_have_no_reasons(data: tuple, kind: str) -> None:
    schema, rows, scorers = data
    none = schema.encode(rows)[:0]
    assert scorers[kind].contributions(none).shape == (0, len(schema) + 1)
    assert explain(scorers[kind], schema, none).names.shape == (0, min(DEFAULT_TOP_K, len(schema)))
