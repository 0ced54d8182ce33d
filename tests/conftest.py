"""Shared fixtures: throwaway MLflow stores with freshly trained models (no binaries committed)."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from fraudcore.registry import Registry
from fraudcore.settings import Settings
from training.data import synthetic_source
from training.pipeline import Registration, train_and_register
from training.synthetic import generate
from training.train import TrainConfig

TEST_ROWS = 60_000
TEST_SEED = 7
TEST_FRAUD_RATE = 0.01


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings for an embedded store under `home`, ignoring the caller's environment."""
    values: dict[str, object] = {"home": home, "tracking_uri": None, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class TrainedStore:
    """An embedded MLflow store holding a champion (logistic) and a challenger (XGBoost)."""

    settings: Settings
    champion: Registration
    challenger: Registration
    frame: pd.DataFrame


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    return generate(rows=TEST_ROWS, seed=TEST_SEED, fraud_rate=TEST_FRAUD_RATE)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory, synthetic_frame: pd.DataFrame) -> TrainedStore:
    """Train once per session; tests that change aliases must use their own store."""
    settings = make_settings(tmp_path_factory.mktemp("store") / ".fraud")
    source = synthetic_source(TEST_ROWS, TEST_SEED, fraud_rate=TEST_FRAUD_RATE)
    registry = Registry(settings)
    champion = train_and_register(
        registry, TrainConfig.from_settings(settings, "logistic", seed=TEST_SEED), source
    )
    challenger = train_and_register(
        registry,
        TrainConfig.from_settings(settings, "xgboost", rounds=150, seed=TEST_SEED),
        source,
    )
    return TrainedStore(settings, champion, challenger, synthetic_frame)


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run in an empty working directory with no FRAUD_* or MLflow variables from the caller."""
    import os

    for key in list(os.environ):
        if key.startswith(("FRAUD_", "MLFLOW_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """A CLI run in-process replaces the root handlers with one bound to this test's captured stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# PostgreSQL fixtures (`postgres`, `audit_dsn`) live in tests/pg.py.
pytest_plugins = ("tests.pg",)
