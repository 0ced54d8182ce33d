"""Any tabular schema: inferred from a CSV, declared in a schema file, trained, stored and gated."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore.errors import DataValidationError
from fraudcore.registry import Registry
from fraudcore.schema import Feature, Schema
from tests.conftest import make_settings
from training.data import load_schema_file, load_training_data, split
from training.gate import GateRejectedError
from training.pipeline import train_and_register
from training.train import TrainConfig, train

LABEL = "chargeback"


def transactions(rows: int, seed: int) -> pd.DataFrame:
    """A made-up card schema: fraud is web, card-not-present, new accounts and large amounts."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(3.5, 1.0, rows), 2),
            "channel": rng.choice(["web", "pos", "atm", "phone"], rows, p=[0.4, 0.4, 0.15, 0.05]),
            "card_present": rng.choice(["true", "false"], rows),
            "account_days": np.where(rng.random(rows) < 0.1, np.nan, rng.integers(0, 3000, rows)),
        }
    )
    z = (
        0.004 * frame["amount"]
        + 3.0 * (frame["channel"] == "web")
        + 2.0 * (frame["card_present"] == "false")
        - frame["account_days"].fillna(1500) / 250
        - 3.0
    )
    frame[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "transactions.csv"
    transactions(12_000, seed=1).to_csv(path, index=False)
    return path


def test_kinds_are_inferred_from_the_values(csv: Path) -> None:
    schema = load_training_data(str(csv), label=LABEL).schema
    assert schema.label == LABEL
    assert [(f.name, f.kind, f.optional) for f in schema.features] == [
        ("amount", "numeric", False),
        ("channel", "categorical", False),
        ("card_present", "boolean", False),
        ("account_days", "numeric", True),
    ]
    assert schema.features[1].categories == ("atm", "phone", "pos", "web")
    assert Schema.from_dict(schema.to_dict()) == schema


def test_encoding_marks_unknown_and_missing_as_nan() -> None:
    schema = Schema((Feature("n"), Feature("c", "categorical", ("a", "b")), Feature("f", "boolean")))
    x = schema.encode({"n": [1.5, None], "c": ["b", "zz"], "f": ["True", False]})
    assert x[0].tolist() == [1.5, 1.0, 1.0]
    assert np.isnan(x[1, 0]) and np.isnan(x[1, 1]) and x[1, 2] == 0.0
    assert schema.raw(x) == [[1.5, "b", True], [None, None, False]]


def test_a_schema_file_declares_kinds_categories_and_optional(csv: Path, tmp_path: Path) -> None:
    declared = tmp_path / "schema.yaml"
    declared.write_text(
        f"label: {LABEL}\n"
        "features:\n"
        "  - {name: account_days, kind: categorical}\n"
        "  - {name: channel, kind: categorical, categories: [atm, phone, pos, web, branch]}\n"
        "  - {name: amount, optional: true}\n"
    )
    schema = load_training_data(str(csv), declared=load_schema_file(declared)).schema
    kinds = {f.name: (f.kind, f.optional) for f in schema.features}
    assert kinds["account_days"] == ("categorical", True) and kinds["amount"] == ("numeric", True)
    assert schema.features[1].categories[-1] == "branch"  # declared, though absent from the data

    declared.write_text("features:\n  - {name: channel, kind: categorical, categories: [web]}\n")
    with pytest.raises(DataValidationError, match="not among its declared categories"):
        load_training_data(str(csv), label=LABEL, declared=load_schema_file(declared))
    declared.write_text("features:\n  - {name: channel, kind: text}\n")
    with pytest.raises(DataValidationError, match="kind 'text' is not one of"):
        load_schema_file(declared)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(chargeback=1), "holds one class only \\(all fraud\\)"),
        (
            lambda f: f.assign(txn_id=[f"t{i}" for i in range(len(f))]),
            "txn_id has a different value on every row",
        ),
        (lambda f: f.assign(channel=np.nan), "column channel has no values"),
        (lambda f: f.assign(chargeback=f[LABEL].map({0: "no", 1: "yes"})), "must hold 0 or 1"),
    ],
)
def test_bad_files_get_one_line(csv: Path, tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "bad.csv"
    mutate(pd.read_csv(csv)).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=message):
        _split(path)


def _split(path: Path) -> None:
    loaded = load_training_data(str(path), label=LABEL)
    split(loaded.frame, loaded.schema)


@pytest.mark.parametrize("kind", ["logistic", "xgboost"])
def test_both_families_learn_categorical_signals(csv: Path, kind: str) -> None:
    loaded = load_training_data(str(csv), label=LABEL)
    data = split(loaded.frame, loaded.schema)
    settings = make_settings(Path("/nonexistent"))
    model = train(data, TrainConfig.from_settings(settings, kind, rounds=80), "fp", str(csv))
    assert model.card.metrics["roc_auc"] > 0.85
    web, pos = (loaded.schema.encode({**_row(), "channel": [c]}) for c in ("web", "pos"))
    unknown = loaded.schema.encode({**_row(), "channel": ["crypto"]})
    scores = model.scorer.predict_proba(np.vstack([web, pos, unknown]))
    assert scores[0] > scores[1]  # web raises the score
    assert np.isfinite(scores[2])  # a category never seen in training is scored


def _row() -> dict[str, list]:
    return {"amount": [80.0], "channel": ["pos"], "card_present": ["false"], "account_days": [None]}


def test_registry_round_trip_and_the_gate_refuses_other_inputs(csv: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / ".fraud", gate_min_roc_auc=0.5, gate_min_pr_auc=0.05)
    registry = Registry(settings)
    config = TrainConfig.from_settings(settings, "xgboost", rounds=60)
    first = train_and_register(registry, config, str(csv), LABEL)
    stored = registry.load_version(first.version).bundle.card.schema
    assert stored == load_training_data(str(csv), label=LABEL).schema

    other = tmp_path / "other.csv"
    pd.read_csv(csv).drop(columns=["card_present"]).rename(columns={"channel": "terminal"}).to_csv(
        other, index=False
    )
    with pytest.raises(GateRejectedError) as rejected:
        train_and_register(registry, config, str(other), LABEL)
    assert "inputs differ from the champion's" in str(rejected.value)
    assert "card_present is not an input of the other" in str(rejected.value)


def test_parquet_loads_as_the_csv_does(csv: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "transactions.parquet"
    pd.read_csv(csv).to_parquet(parquet)
    assert (
        load_training_data(str(parquet), label=LABEL).schema
        == load_training_data(str(csv), label=LABEL).schema
    )
    parquet.write_text("amount,chargeback\n1,0\n")
    with pytest.raises(DataValidationError, match="not a readable Parquet file"):
        load_training_data(str(parquet), label=LABEL)
