"""Data tests: the schema check names each problem; the generator has the promised statistics."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore.errors import DataValidationError
from fraudcore.schema import Schema
from training.data import fingerprint, load_source, load_training_data, split, synthetic_source, validate
from training.synthetic import FEATURES, FRAUD_RATE, KAGGLE_ROWS, LABEL, SCENARIOS, generate

COLUMNS = (*FEATURES, LABEL)
SCHEMA = Schema.numeric(FEATURES, LABEL)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(rows=20_000, seed=3, fraud_rate=0.01)


def write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_generated_file_round_trips(tmp_path: Path, small: pd.DataFrame) -> None:
    loaded = load_training_data(str(write(tmp_path, small)))
    assert list(loaded.frame.columns) == list(COLUMNS)
    assert loaded.schema == SCHEMA
    assert len(loaded.frame) == len(small)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["Class"]), "no label column 'Class'"),
        (lambda f: f.assign(Amount=f["Amount"].astype(str).where(f.index != 5, "12,50")), "first '12,50'"),
        (
            lambda f: f.assign(Class=f[LABEL].where(f.index != 2, 2)),
            "must hold 0 or 1 (or true/false), found ['2']",
        ),
        (lambda f: f.assign(V3=np.nan), "column V3 has no values"),
        (lambda f: f[[LABEL]], "no feature columns"),
    ],
)
def test_bad_files_are_rejected_naming_the_problem(tmp_path: Path, small: pd.DataFrame, mutate, message):
    with pytest.raises(DataValidationError) as error:
        load_training_data(str(write(tmp_path, mutate(small.head(200).copy()))))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["V7"]), "missing column(s) V7"),
        (lambda f: f.assign(V3=f["V3"].where(f.index != 9, np.nan)), "column V3 at row 10"),
        (lambda f: f.assign(V3=f["V3"].where(f.index != 4, np.inf)), "first in column V3 at row 5"),
        (lambda f: f.iloc[:0], "no rows"),
    ],
)
def test_rows_checked_against_a_model_schema(small: pd.DataFrame, mutate, message) -> None:
    with pytest.raises(DataValidationError) as error:
        validate(mutate(small.head(50).copy()), SCHEMA)
    assert message in str(error.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no such file"):
        load_training_data(str(tmp_path / "absent.csv"))
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataValidationError, match="not a readable CSV"):
        load_training_data(str(binary))


def test_full_size_generation_matches_the_public_schema() -> None:
    frame = generate(seed=42)
    assert frame.shape == (KAGGLE_ROWS, len(COLUMNS))
    assert list(frame.columns) == list(COLUMNS)
    assert frame[LABEL].mean() == pytest.approx(FRAUD_RATE, rel=0.02)
    assert frame["Time"].is_monotonic_increasing
    assert frame["Time"].between(0, 172_800).all()
    assert (frame["Amount"] >= 0).all()
    # PCA-like components: centred, decreasing spread.
    legit = frame[frame[LABEL] == 0]
    spreads = legit[[f"V{i}" for i in range(1, 29)]].std().to_numpy()
    assert np.all(np.abs(legit[[f"V{i}" for i in range(1, 29)]].mean()) < 0.05)
    assert spreads[0] > 3 * spreads[-1]


def test_generation_is_seeded(small: pd.DataFrame) -> None:
    assert fingerprint(generate(rows=20_000, seed=3, fraud_rate=0.01)) == fingerprint(small)
    assert fingerprint(generate(rows=20_000, seed=4, fraud_rate=0.01)) != fingerprint(small)


def _fingerprint_under_blas_kernel(kernel: str) -> str:
    code = (
        "from training.data import fingerprint; from training.synthetic import generate; "
        "print(fingerprint(generate(rows=20_000, seed=3, fraud_rate=0.01, scenario='amount-inflation')))"
    )
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_generation_gives_the_same_bytes_under_every_blas_kernel() -> None:
    # Machines of one kind differ in CPU, and OpenBLAS picks its kernels by CPU; Prescott (SSE3) and
    # Haswell (AVX2) both run on any current x86-64 and sum dot products in a different order.
    assert _fingerprint_under_blas_kernel("Prescott") == _fingerprint_under_blas_kernel("Haswell")


def test_fraud_differs_from_legit_along_known_directions(small: pd.DataFrame) -> None:
    means = small.groupby(LABEL)[["V14", "V12", "V4", "V11"]].mean()
    assert means.loc[1, "V14"] < means.loc[0, "V14"] - 1
    assert means.loc[1, "V12"] < means.loc[0, "V12"] - 0.5
    assert means.loc[1, "V4"] > means.loc[0, "V4"] + 0.5
    assert means.loc[1, "V11"] > means.loc[0, "V11"] + 0.3


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenarios_change_the_data(scenario: str) -> None:
    clean = generate(rows=20_000, seed=5)
    shifted = generate(rows=20_000, seed=5, scenario=scenario)
    assert list(shifted.columns) == list(COLUMNS)
    assert fingerprint(clean) != fingerprint(shifted)


def test_amount_inflation_inflates_amounts() -> None:
    clean = generate(rows=20_000, seed=5)
    shifted = generate(rows=20_000, seed=5, scenario="amount-inflation")
    assert shifted["Amount"].median() > 1.5 * clean["Amount"].median()


def test_synthetic_sources_round_trip() -> None:
    source = synthetic_source(5_000, 9, scenario="new-fraud-pattern", fraud_rate=0.02)
    frame = load_source(source)
    assert len(frame) == 5_000
    wave = SCENARIOS["new-fraud-pattern"].fraud_rate
    assert frame[LABEL].mean() == pytest.approx(wave, abs=0.005)  # the scenario sets its own rate


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("synthetic:rows=10", "is not synthetic:rows=N,seed=S"),
        ("synthetic:rows=10,seed=1,colour=red", "unknown option(s) colour"),
        ("synthetic:rows=1000,seed=1,scenario=meteor", "unknown scenario 'meteor'"),
    ],
)
def test_bad_synthetic_sources(source: str, message: str) -> None:
    with pytest.raises(DataValidationError) as error:
        load_source(source)
    assert message in str(error.value)


def test_split_shares_and_classes(small: pd.DataFrame) -> None:
    parts = split(small, SCHEMA)
    sizes = np.array([len(parts.y_train), len(parts.y_valid), len(parts.y_holdout)]) / len(small)
    assert sizes == pytest.approx([0.65, 0.15, 0.20], abs=0.01)
    rates = [parts.y_train.mean(), parts.y_valid.mean(), parts.y_holdout.mean()]
    assert max(rates) - min(rates) < 0.004  # 200 frauds: the shares hold in expectation
    assert parts.x_train.dtype == np.float32 and parts.x_train.shape[1] == len(FEATURES)
    with pytest.raises(DataValidationError, match="at least 10"):
        split(small[small[LABEL] == 0].head(1000).assign(**{LABEL: 0}), SCHEMA)
    with pytest.raises(DataValidationError, match="both classes are needed"):
        split(pd.concat([small[small[LABEL] == 1].head(10), small[small[LABEL] == 0].head(5)]), SCHEMA)


def test_added_rows_never_move_a_row_into_the_holdout(small: pd.DataFrame) -> None:
    """Retraining adds rows to the champion's data: the champion's training rows stay out of the
    holdout the two are compared on."""
    grown = pd.concat([small, generate(rows=5_000, seed=4, fraud_rate=0.01)], ignore_index=True)
    base, more = split(small, SCHEMA), split(grown, SCHEMA)
    holdout = {row.tobytes() for row in more.x_holdout}
    assert not any(row.tobytes() in holdout for row in base.x_train)
    assert {row.tobytes() for row in base.x_holdout} <= holdout


def test_the_paysim_data_set_loads_with_its_own_label_and_a_text_type() -> None:
    source = synthetic_source(20_000, 3, dataset="paysim", fraud_rate=0.01)
    loaded = load_training_data(source)
    assert loaded.schema.label == "isFraud"
    kinds = {f.name: f.kind for f in loaded.schema.features}
    assert kinds["type"] == "categorical" and kinds["amount"] == "numeric"
    assert "TRANSFER" in loaded.schema.features[list(kinds).index("type")].categories
    assert load_training_data(source).frame.equals(loaded.frame)  # seeded
    with pytest.raises(DataValidationError, match=r"dataset=creditcard\|paysim"):
        load_source("synthetic:rows=10,seed=1,dataset=iris")
