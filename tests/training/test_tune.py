"""Hyper-parameter search: `fraud train --tune`, its trials as nested MLflow runs, the best trial's
hyper-parameters registered, the same trials for the same seed, and bad budgets refused in one line."""

from pathlib import Path

import numpy as np
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from fraudcore.registry import Registry
from tests.conftest import make_settings
from tests.model_server.test_any_schema import LABEL, transactions
from tests.pg import Fraud
from training.data import infer_schema, split, validate
from training.train import TrainConfig, fit_lightgbm
from training.tune import TRIAL_STATE_TAG, TRIAL_TAG, Budget, search


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labelled card payments with a categorical column (channel) and missing values."""
    path = tmp_path_factory.mktemp("tune") / "transactions.csv"
    transactions(3000, seed=5).to_csv(path, index=False)
    return path


def test_tune_logs_every_trial_and_registers_the_best(data_csv: Path, tmp_path: Path, fraud: Fraud) -> None:
    home = tmp_path / ".fraud"
    result = fraud(
        "train", "--model", "lightgbm", "--data", str(data_csv), "--label", LABEL,
        "--rounds", "60", "--tune", "3", FRAUD_HOME=str(home),
    )  # fmt: skip
    assert result.code in (0, 3), result.err
    for n in (1, 2, 3):
        assert f"trial {n} of 3: " in result.err
    assert "best so far" in result.err

    registry = Registry(make_settings(home))
    client = registry.client
    version = client.get_model_version(registry.name, "1")
    assert version.tags["kind"] == "lightgbm"
    parent = client.get_run(version.tags["run_id"])
    experiment = parent.info.experiment_id
    trials = client.search_runs([experiment], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")
    assert len(trials) == 3
    assert {t.data.tags[TRIAL_STATE_TAG] for t in trials} == {"complete"}  # the first trials never prune
    assert all({"num_leaves", "learning_rate"} <= t.data.params.keys() for t in trials)
    assert all(0 <= t.data.metrics["valid_pr_auc"] <= 1 for t in trials)

    best = max(trials, key=lambda t: t.data.metrics["valid_pr_auc"])
    assert parent.data.metrics["tune_best_trial"] == int(best.data.tags[TRIAL_TAG])
    assert parent.data.metrics["tune_trials"] == 3
    registered = parent.data.params
    for name, value in best.data.params.items():
        assert float(registered[name]) == pytest.approx(float(value)), name
    assert registered["rounds"] == "60"


def test_the_same_seed_gives_the_same_trials(tmp_path: Path) -> None:
    frame = transactions(3000, seed=5)
    schema = infer_schema(frame, LABEL)
    data = split(validate(frame, schema, "test"), schema)
    config = TrainConfig.from_settings(make_settings(tmp_path), "xgboost", rounds=40, seed=3)
    first, again = (search(data, config, Budget(trials=3)) for _ in range(2))
    assert first.config == again.config
    assert (first.best_trial, first.best_pr_auc) == (again.best_trial, again.best_pr_auc)
    other = search(data, TrainConfig.from_settings(make_settings(tmp_path), "xgboost", rounds=40, seed=4),
                   Budget(trials=3))  # fmt: skip
    assert other.config.hyper != first.config.hyper


def test_lightgbm_contributions_sum_to_the_log_odds(tmp_path: Path) -> None:
    frame = transactions(3000, seed=6)
    schema = infer_schema(frame, LABEL)
    data = split(validate(frame, schema, "test"), schema)
    scorer = fit_lightgbm(data, TrainConfig.from_settings(make_settings(tmp_path), "lightgbm", rounds=50))
    x = data.x_holdout
    contributions = scorer.contributions(x)
    assert contributions.shape == (len(x), x.shape[1] + 1)
    assert contributions.dtype == np.float32
    p = scorer.predict_proba(x).astype(np.float64)
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(p / (1 - p)), atol=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tune", "0"], "error: --tune must be at least 1 trial, not 0"),
        (["--tune", "-2"], "error: --tune must be at least 1 trial, not -2"),
        (["--tune-minutes", "0"], "error: --tune-minutes must be more than 0, not 0"),
    ],
)
def test_a_bad_budget_is_one_line(args: list[str], message: str, fraud: Fraud) -> None:
    result = fraud("train", "--rows", "1000", *args)
    assert result.code == 2
    assert result.err.strip() == message


def test_an_unknown_family_is_refused(fraud: Fraud) -> None:
    result = fraud("train", "--model", "catboost")
    assert result.code == 2
    assert "catboost" in result.err
    assert "Traceback" not in result.err
