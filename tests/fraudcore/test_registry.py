"""Registry and validation gate against real MLflow stores: embedded SQLite and a server process."""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from fraudcore.errors import NotFoundError, UnavailableError
from fraudcore.registry import Registry
from fraudcore.settings import Settings
from tests.conftest import TEST_SEED, TrainedStore, make_settings
from tests.support import free_port, mlflow_server
from training.data import synthetic_source
from training.gate import GatePolicy, GateRejectedError, gate_verdict, top_reason_change
from training.pipeline import promote, train_and_register
from training.train import TrainConfig

FRAUD = str(Path(sys.executable).with_name("fraud"))


@pytest.fixture
def store(trained_store: TrainedStore, tmp_path: Path) -> Settings:
    """A private copy of the trained store, so tests may move aliases."""
    home = tmp_path / ".fraud"
    shutil.copytree(trained_store.settings.home, home, ignore=shutil.ignore_patterns("models"))
    return make_settings(home)


def run_fraud(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "MLFLOW_"))}
    env["FRAUD_HOME"] = str(settings.home)
    if settings.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return subprocess.run([FRAUD, *args], capture_output=True, text=True, env=env, timeout=600)


def test_versions_are_listed_with_aliases_and_verdicts(trained_store: TrainedStore) -> None:
    rows = Registry(trained_store.settings).list_versions()
    assert [r.version for r in rows] == ["2", "1"]
    assert rows[0].aliases == ("challenger",) and rows[1].aliases == ("champion",)
    assert {r.kind for r in rows} == {"xgboost", "logistic"}
    assert all(r.status == "passed" for r in rows)


def test_cli_lists_versions(store: Settings) -> None:
    result = run_fraud(store, "models", "list")
    assert result.returncode == 0, result.stderr
    assert "@champion" in result.stdout and "@challenger" in result.stdout
    assert "30 inputs (30 numeric), label Class" in result.stdout
    shown = run_fraud(store, "models", "show", "@challenger")
    assert shown.returncode == 0, shown.stderr
    assert "version 2" in shown.stdout and "xgboost" in shown.stdout and "V28" in shown.stdout
    assert re.search(r"top reason changed from the champion's on \d+\.\d% of \d+ flagged", shown.stdout)


def test_the_gate_reports_how_often_the_top_reason_changes(trained_store: TrainedStore) -> None:
    """Informational: on the holdout rows the challenger flags, against the champion (same schema)."""
    assert trained_store.champion.result.reason_change is None  # no champion to compare with
    change = trained_store.challenger.result.reason_change
    assert change is not None and trained_store.challenger.result.passed
    assert change.rows > 0 and 0.0 <= change.share <= 1.0
    rows = {r.version: r for r in Registry(trained_store.settings).list_versions()}
    assert rows["2"].top_reason_change == str(change) and rows["1"].top_reason_change == "-"
    assert re.fullmatch(r"\d+\.\d% of \d+ flagged", str(change))


def test_a_model_compared_with_itself_keeps_every_top_reason(trained_store: TrainedStore) -> None:
    bundle = Registry(trained_store.settings).load_version("2").bundle
    x = bundle.reference()[:200]
    same = top_reason_change(bundle.scorer, x, bundle.scorer, x, bundle.card.schema)
    assert (same.share, same.rows) == (0.0, 200)


def test_promotion_gates_against_the_champion_then_moves_aliases(store: Settings) -> None:
    version, result = promote(Registry(store), "@challenger")
    assert version == "2"
    assert result is not None and result.passed
    assert result.champion is not None  # compared with v1 on the same holdout
    assert result.reason_change is not None and result.reason_change.rows > 0
    client = Registry(store)
    assert client.alias_version("champion") == "2"
    assert client.alias_version("challenger") is None
    assert promote(Registry(store), "2") == ("2", None)  # already champion: nothing to do
    with pytest.raises(NotFoundError, match="no @challenger alias"):
        promote(Registry(store), "@challenger")


def test_weak_model_is_rejected_with_reason_and_exit_code(store: Settings) -> None:
    result = run_fraud(store, "train", "--rows", "60000", "--rounds", "1", "--max-depth", "1")
    assert result.returncode == 3, result.stderr
    assert "rejected: version 3 rejected:" in result.stderr
    assert "below the floor" in result.stderr
    assert "Traceback" not in result.stderr
    rows = {r.version: r for r in Registry(store).list_versions()}
    assert rows["3"].status == "rejected" and "below the floor" in rows["3"].reason
    assert rows["3"].aliases == ()

    refused = run_fraud(store, "models", "promote", "3")
    assert refused.returncode == 3 and "not promoted" in refused.stderr
    forced = run_fraud(store, "models", "promote", "3", "--force")
    assert forced.returncode == 0, forced.stderr
    assert Registry(store).alias_version("champion") == "3"


def test_regression_against_the_champion_is_refused(store: Settings) -> None:
    promote(Registry(store), "2")  # the stronger XGBoost model becomes champion
    with pytest.raises(GateRejectedError, match="below the champion's"):
        promote(Registry(store), "1")
    assert Registry(store).alias_version("champion") == "2"


def test_unknown_version_is_a_clear_error(store: Settings) -> None:
    result = run_fraud(store, "models", "promote", "99")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: fraud-detector has no version 99"


def test_gate_refuses_scores_outside_zero_one() -> None:
    import numpy as np

    policy = GatePolicy.from_settings(make_settings(Path(".fraud")))
    verdict = gate_verdict(np.array([0, 1]), np.array([0.2, 1.5]), 0.5, policy)
    assert not verdict.passed and "finite probabilities" in verdict.summary()
    verdict = gate_verdict(np.array([0, 1]), np.array([0.2, np.nan]), 0.5, policy)
    assert not verdict.passed


def test_bad_model_uris(trained_store: TrainedStore) -> None:
    from fraudcore.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="is not models:/<name>/<version>"):
        Registry(trained_store.settings).load("models:/fraud-detector/latest")
    with pytest.raises(NotFoundError):
        Registry(trained_store.settings).load("models:/fraud-detector/42")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The tracking server's backend: SQLite, or PostgreSQL as the cluster runs it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    server = request.getfixturevalue("postgres")
    database = f"mlflow_{tmp_path.name[-20:].replace('-', '_').lower()}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database}")
        conn.execute(f"CREATE DATABASE {database}")
    return server.dsn.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{database}"


def test_tracking_server_workflow_and_cache_fallback(
    tmp_path: Path, synthetic_frame, backend_store_uri: str
) -> None:
    with mlflow_server(tmp_path / "server", backend_store_uri) as url:
        settings = make_settings(tmp_path / ".fraud", tracking_uri=url)
        source = synthetic_source(len(synthetic_frame), TEST_SEED, fraud_rate=0.01)
        config = TrainConfig.from_settings(settings, "logistic", seed=TEST_SEED)
        first = train_and_register(Registry(settings), config, source)
        assert (first.version, first.alias) == ("1", "champion")
        served = Registry(settings).load("models:/fraud-detector@champion")
        assert (served.version, served.from_cache) == ("1", False)
        rows = Registry(settings).list_versions()
        assert rows[0].aliases == ("champion",)
    # The server is gone: the alias resolves from the local copy.
    offline = Registry(settings).load("models:/fraud-detector@champion")
    assert (offline.version, offline.from_cache) == ("1", True)
    with pytest.raises(UnavailableError, match="no local copy"):
        Registry(settings).load("models:/fraud-detector/5")
    unreachable = make_settings(tmp_path / "other", tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError, match="registry is unreachable"):
        Registry(unreachable).load("models:/fraud-detector@champion")


def test_processes_sharing_a_cache_fetch_one_version_at_once(store: Settings) -> None:
    """Pods sharing a cache volume (`predictor.modelCache.persistence`) start together: each
    downloads on its own, one copy lands, and every process serves it."""
    version, jobs = "2", 6
    with ThreadPoolExecutor(jobs) as pool:
        loaded = list(pool.map(lambda _: Registry(store).load_version(version), range(jobs)))
    assert {m.version for m in loaded} == {version} and not any(m.from_cache for m in loaded)
    cache = store.model_cache_dir / store.registered_model
    assert sorted(p.name for p in cache.iterdir()) == [version]  # no partial download left behind
