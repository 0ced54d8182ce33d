"""`fraud retrain`: reference data plus labelled traffic from the audit log, gated, `@challenger`."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from fraudcore.names import CHALLENGER, CHAMPION, STATUS_TAG
from fraudcore.registry import Registry
from fraudcore.schema import Schema
from fraudcore.settings import Settings
from tests.conftest import TEST_FRAUD_RATE, make_settings
from tests.pg import Fraud, log_traffic
from training.data import load_source, synthetic_source
from training.pipeline import train_and_register
from training.synthetic import FEATURES, generate
from training.train import TrainConfig

ROWS, SEED = 20_000, 11


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    """A store of its own (aliases move here) with a logistic champion."""
    settings = make_settings(tmp_path / ".fraud")
    source = synthetic_source(ROWS, SEED, fraud_rate=TEST_FRAUD_RATE)
    train_and_register(Registry(settings), TrainConfig.from_settings(settings, "logistic", seed=SEED), source)
    return settings


def test_retrain_after_drift_makes_a_gated_challenger(
    store: Settings, audit_dsn: str, tmp_path: Path, fraud: Fraud
) -> None:
    env = {"FRAUD_HOME": str(store.home), "FRAUD_AUDIT_DSN": audit_dsn}
    name = store.registered_model
    traffic = generate(rows=3_000, seed=12, scenario="new-fraud-pattern")
    labels = log_traffic(audit_dsn, traffic, Schema.numeric(FEATURES))

    skipped = fraud("retrain", "--only-on-drift", **env)
    assert (skipped.code, skipped.out.strip()) == (0, "nothing to retrain: no drift check has run yet")
    unlabelled = fraud("retrain", **env)
    assert unlabelled.code == 0
    assert "nothing to retrain: no labelled transactions" in unlabelled.out

    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert fraud("labels", "ingest", str(tmp_path / "labels.csv"), **env).code == 0
    assert fraud("drift", "--out", str(tmp_path / "report"), **env).code == 4

    strict = fraud("retrain", "--only-on-drift", FRAUD_GATE_MIN_PR_AUC="0.99", **env)
    assert strict.code == 3
    assert strict.err.strip().splitlines()[-1].startswith("rejected: version 2 rejected: PR-AUC")
    registry = Registry(store)
    client = registry.client
    assert client.get_model_version(name, "2").tags[STATUS_TAG] == "rejected"
    assert registry.alias_version(CHALLENGER) is None

    result = fraud("retrain", "--only-on-drift", **env)
    assert result.code == 0, result.err
    assert f"{name} version 3 → @challenger" in result.out
    assert "trained with 3,000 labelled rows" in result.out
    assert registry.alias_version(CHALLENGER) == "3"

    # The new version's data can be loaded again: promotion re-gates it on the same holdout.
    run_id = client.get_model_version(name, "3").tags["run_id"]
    source = client.get_run(run_id).data.params["data_source"]
    assert source.startswith(synthetic_source(ROWS, SEED, fraud_rate=TEST_FRAUD_RATE) + " + runs:/")
    assert len(load_source(source, registry)) == ROWS + len(traffic)
    promoted = fraud("models", "promote", "@challenger", **env)
    assert promoted.code == 0, promoted.err
    assert registry.alias_version(CHAMPION) == "3"
    assert client.get_model_version(name, "3").tags[STATUS_TAG] == "passed"


def test_retrain_from_a_labelled_csv(store: Settings, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "labelled.csv"
    generate(rows=2_000, seed=13, fraud_rate=TEST_FRAUD_RATE, scenario="amount-inflation").to_csv(
        path, index=False
    )
    result = fraud("retrain", "--data", str(path), FRAUD_HOME=str(store.home))
    assert result.code == 0, result.err
    assert "version 2 → @challenger" in result.out
    assert "champion on the same holdout" in result.out


def test_retrain_can_tune_another_family(store: Settings, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "labelled.csv"
    generate(rows=2_000, seed=13, fraud_rate=TEST_FRAUD_RATE).to_csv(path, index=False)
    env = {"FRAUD_HOME": str(store.home)}
    result = fraud("retrain", "--data", str(path), "--model", "lightgbm", "--tune", "2", **env)
    assert result.code in (0, 3), result.err  # the gate may prefer the champion; the version exists
    assert "trial 2 of 2: " in result.err
    registry = Registry(store)
    version = registry.client.get_model_version(store.registered_model, "2")
    assert version.tags["kind"] == "lightgbm"
    run = registry.client.get_run(version.tags["run_id"])
    assert run.data.metrics["tune_trials"] == 2
    trials = registry.client.search_runs(
        [run.info.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run.info.run_id}'"
    )
    assert len(trials) == 2


def test_retrain_needs_a_champion(tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "labelled.csv"
    generate(rows=1_000, seed=14).to_csv(path, index=False)
    result = fraud("retrain", "--data", str(path), FRAUD_HOME=str(tmp_path / ".fraud"))
    assert result.code == 1
    assert "not in the registry" in result.err
    assert len(result.err.strip().splitlines()) == 1


def with_channel(frame: pd.DataFrame, seed: int, new_channel: str | None = None) -> pd.DataFrame:
    """A few credit-card columns with a categorical `channel` (fraud mostly on the web, or half of it
    on `new_channel`), an optional categorical `country`, a boolean `card_present`, label `is_fraud`."""
    rng = np.random.default_rng(seed)
    fraud = frame["Class"].to_numpy() == 1
    channel = rng.choice(["atm", "pos", "web"], len(frame), p=[0.3, 0.6, 0.1]).astype(object)
    channel[fraud] = rng.choice(["web", new_channel or "web"], int(fraud.sum()))
    country = rng.choice(["DE", "FR", "NL"], len(frame)).astype(object)
    country[rng.random(len(frame)) < 0.05] = None
    present = np.where(fraud, rng.random(len(frame)) < 0.3, rng.random(len(frame)) < 0.8)
    return frame[["V14", "V4", "Amount"]].assign(
        channel=channel, country=country, card_present=present, is_fraud=frame["Class"]
    )


def test_retraining_learns_a_category_first_seen_in_traffic(
    tmp_path: Path, audit_dsn: str, fraud: Fraud
) -> None:
    settings = make_settings(tmp_path / ".fraud")
    data = tmp_path / "transactions.csv"
    with_channel(generate(rows=ROWS, seed=SEED, fraud_rate=TEST_FRAUD_RATE), seed=1).to_csv(data, index=False)
    registry = Registry(settings)
    config = TrainConfig.from_settings(settings, "logistic", seed=SEED)
    train_and_register(registry, config, str(data), label="is_fraud")
    schema = registry.load_version("1").bundle.card.schema
    assert schema.features[3].categories == ("atm", "pos", "web")
    assert schema.features[4].optional

    traffic = with_channel(generate(rows=3_000, seed=12, fraud_rate=0.05), seed=2, new_channel="app")
    labels = log_traffic(audit_dsn, traffic, schema)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    env = {"FRAUD_HOME": str(settings.home), "FRAUD_AUDIT_DSN": audit_dsn}
    assert fraud("labels", "ingest", str(tmp_path / "labels.csv"), **env).code == 0

    result = fraud("retrain", **env)
    assert result.code == 0, result.err
    assert "version 2 → @challenger" in result.out
    retrained = registry.load_version("2").bundle.card.schema
    assert retrained.label == "is_fraud"
    assert retrained.features[3].categories == ("app", "atm", "pos", "web")
    assert [(f.name, f.kind, f.optional) for f in retrained.features] == [
        (f.name, f.kind, f.optional) for f in schema.features
    ]
