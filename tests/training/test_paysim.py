"""The mobile-money generator: PaySim's schema and mechanics, fraud that no one column gives away,
bytes that do not depend on the CPU, drift scenarios that change what they claim and nothing else."""

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.stats import chi2_contingency
from sklearn.metrics import average_precision_score

from training.paysim import COLUMNS, DAYS, FEATURES, FRAUD_RATE, LABEL, TYPE_SHARES, TYPES, generate

MONEY = ["amount", "oldbalanceOrg", "newbalanceOrig", "oldbalanceDest", "newbalanceDest"]
MOVES_OUT = ["CASH_OUT", "TRANSFER"]


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    """Large enough for a few hundred frauds at the default rate."""
    return generate(200_000, seed=11)


def emptied(frame: pd.DataFrame) -> pd.Series:
    return (frame["amount"] == frame["oldbalanceOrg"]) & (frame["newbalanceOrig"] == 0)


def destination_adds_up(frame: pd.DataFrame) -> pd.Series:
    expected = frame["oldbalanceDest"] + frame["amount"]
    return pd.Series(np.isclose(frame["newbalanceDest"], expected, rtol=0, atol=0.005), frame.index)


def within_binomial(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1 / n


def test_columns_and_dtypes(month: pd.DataFrame) -> None:
    assert list(month.columns) == list(COLUMNS)
    assert pd.api.types.is_integer_dtype(month["step"]) and pd.api.types.is_integer_dtype(month[LABEL])
    assert month["type"].map(type).eq(str).all() and set(month["type"]) == set(TYPES)
    assert all(pd.api.types.is_float_dtype(month[c]) for c in MONEY)
    assert set(month[LABEL]) == {0, 1}
    assert month["step"].is_monotonic_increasing
    assert month["step"].between(1, 24 * DAYS).all() and month["step"].nunique() == 24 * DAYS
    money = month[MONEY].to_numpy()
    assert (money >= 0).all()
    assert np.allclose(money * 100, np.round(money * 100), rtol=0, atol=1e-4)  # cents


def test_type_shares_are_paysims(month: pd.DataFrame) -> None:
    shares = month["type"].value_counts(normalize=True)
    for name, share in TYPE_SHARES.items():
        assert within_binomial(shares[name], share, len(month)), name
    assert shares.idxmax() == "CASH_OUT" and shares.idxmin() == "DEBIT"


def test_legit_traffic_sleeps_at_night_and_fraud_does_not(month: pd.DataFrame) -> None:
    night = ((month["step"] - 1) % 24).between(1, 5)
    legit_at_night = night[month[LABEL] == 0].mean()
    assert legit_at_night < 0.05  # 5 of 24 hours
    assert night[month[LABEL] == 1].mean() > 3 * legit_at_night


def test_generation_is_seeded() -> None:
    pd.testing.assert_frame_equal(generate(5_000, seed=3), generate(5_000, seed=3))
    assert not generate(5_000, seed=3).equals(generate(5_000, seed=4))


@pytest.mark.parametrize("rate", [FRAUD_RATE, 0.01])
def test_fraud_rate(rate: float) -> None:
    frame = generate(100_000, seed=5, fraud_rate=rate)
    assert within_binomial(frame[LABEL].mean(), rate, len(frame))


def test_frauds_do_not_all_come_last_within_an_hour(month: pd.DataFrame) -> None:
    last_in_step = month["step"].ne(month["step"].shift(-1))
    fraud = month[LABEL] == 1
    assert (fraud & ~last_in_step).sum() > 0.9 * fraud.sum()


def test_fraud_only_moves_money_out(month: pd.DataFrame) -> None:
    assert set(month.loc[month[LABEL] == 1, "type"]) == set(MOVES_OUT)


def test_most_frauds_empty_the_account_but_not_all_and_some_customers_do_too(month: pd.DataFrame) -> None:
    fraud = month[month[LABEL] == 1]
    assert 0.7 < emptied(fraud).mean() < 0.95
    partial = fraud[~emptied(fraud)]
    assert (partial["newbalanceOrig"] > 0).all()
    assert (partial["amount"] < partial["oldbalanceOrg"]).all()
    legit = month[(month[LABEL] == 0) & month["type"].isin(MOVES_OUT)]
    assert 0.005 < emptied(legit).mean() < 0.1
    assert emptied(legit).sum() > 3 * emptied(fraud).sum()  # an emptied account alone is no proof


def test_balance_errors_are_common_in_fraud_and_occur_in_legit_rows(month: pd.DataFrame) -> None:
    moving = month[month["type"].isin(MOVES_OUT)]
    off = ~destination_adds_up(moving)
    fraud = moving[LABEL] == 1
    assert off[fraud].mean() > 0.4
    assert 0.005 < off[~fraud].mean() < 0.2
    assert off[~fraud].sum() > 3 * off[fraud].sum()
    # The ledger does not know every origin either: money leaves an account that holds nothing.
    unknown_origin = (moving["oldbalanceOrg"] == 0) & (moving["newbalanceOrig"] == 0)
    assert unknown_origin[~fraud].mean() > 0.01 and not unknown_origin[fraud].any()


def assert_legit_ledger_adds_up(frame: pd.DataFrame) -> None:
    legit = frame[frame[LABEL] == 0]
    cash_in, payment = legit[legit["type"] == "CASH_IN"], legit[legit["type"] == "PAYMENT"]
    assert len(cash_in) and len(payment)
    for rows, sign in ((cash_in, 1), (payment, -1)):
        expected = rows["oldbalanceOrg"] + sign * rows["amount"]
        assert np.allclose(rows["newbalanceOrig"], expected, rtol=0, atol=0.005)
    assert (payment[["oldbalanceDest", "newbalanceDest"]] == 0).all(axis=None)  # merchants untracked


def test_legit_cash_in_and_payment_balances_add_up(month: pd.DataFrame) -> None:
    assert_legit_ledger_adds_up(month)


def test_type_mix_shift_changes_the_mix_and_nothing_else() -> None:
    clean = generate(50_000, seed=5)
    shifted = generate(50_000, seed=5, scenario="type-mix-shift")
    counts = pd.concat([clean["type"].value_counts(), shifted["type"].value_counts()], axis=1)
    assert chi2_contingency(counts.to_numpy()).pvalue < 1e-12
    before, after = (f["type"].value_counts(normalize=True) for f in (clean, shifted))
    assert after["TRANSFER"] > 2.2 * before["TRANSFER"]
    others = [t for t in TYPES if t != "TRANSFER"]
    relative = (after[others] / after[others].sum()) / (before[others] / before[others].sum())
    assert relative.between(0.9, 1.1).all()
    before_median, after_median = (f.groupby("type")["amount"].median() for f in (clean, shifted))
    assert (after_median / before_median).between(0.75, 1.33).all()  # DEBIT: a few hundred rows
    assert shifted[LABEL].sum() == clean[LABEL].sum()
    assert set(shifted.loc[shifted[LABEL] == 1, "type"]) == set(MOVES_OUT)


def test_amount_inflation_makes_the_same_rows_richer() -> None:
    clean = generate(50_000, seed=5)
    shifted = generate(50_000, seed=5, scenario="amount-inflation")
    pd.testing.assert_frame_equal(shifted[["step", "type", LABEL]], clean[["step", "type", LABEL]])
    for column in ["amount", "oldbalanceOrg", "oldbalanceDest"]:
        held = clean[column] > 0
        ratio = shifted.loc[held, column] / clean.loc[held, column]
        assert ratio.between(1.6 - 1e-3, 2.2 + 1e-3).all(), column
        assert 1.8 < ratio.median() < 2.0, column
        assert (shifted.loc[~held, column] == 0).all(), column
    pd.testing.assert_series_equal(emptied(shifted), emptied(clean))
    moving = clean["type"].isin(MOVES_OUT)
    pd.testing.assert_series_equal(destination_adds_up(shifted[moving]), destination_adds_up(clean[moving]))
    assert_legit_ledger_adds_up(shifted)


def _hash_under_blas_kernel(kernel: str) -> str:
    code = (
        "import hashlib, pandas as pd; from training.paysim import SCENARIOS, generate; "
        "frames = [generate(20_000, seed=7)] + [generate(20_000, seed=7, scenario=s) for s in SCENARIOS]; "
        "print([hashlib.sha256(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes()).hexdigest()"
        " for f in frames])"
    )
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_generation_gives_the_same_bytes_under_every_blas_kernel() -> None:
    # As for the credit-card generator (tests/training/test_data.py): Prescott (SSE3) and Haswell
    # (AVX2) run on any current x86-64 and would change the low bits of anything BLAS computes.
    assert _hash_under_blas_kernel("Prescott") == _hash_under_blas_kernel("Haswell")


def _model_input(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame[list(FEATURES)].copy()
    x["type"] = pd.Categorical(x["type"], categories=TYPES)
    return x


@pytest.mark.parametrize("rate", [FRAUD_RATE, 0.01])
def test_fraud_is_learnable_but_not_given_away(rate: float) -> None:
    """XGBoost with training/train.py's parameters, trained on 50k rows, scored on a fresh month.
    At the default rate (65 frauds to learn from) it scored 0.37-0.54 over 10 seeds, at 1 % 0.79-0.82;
    without the legitimate rows that share fraud's tells, 0.93 at 1 %. So the default rate holds
    the band's lower edge and 1 % its upper one."""
    train, holdout = generate(50_000, seed=21, fraud_rate=rate), generate(200_000, seed=22, fraud_rate=rate)
    negatives, positives = np.bincount(train[LABEL])
    model = xgb.XGBClassifier(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.08,
        subsample=0.8,
        colsample_bytree=0.8,
        min_child_weight=2,
        scale_pos_weight=math.sqrt(negatives / positives),
        enable_categorical=True,
        n_jobs=1,  # on a busy machine, two threads wait for each other ten times longer
        random_state=0,
    )
    model.fit(_model_input(train), train[LABEL])
    pr_auc = average_precision_score(holdout[LABEL], model.predict_proba(_model_input(holdout))[:, 1])
    assert 0.3 < pr_auc < 0.9
