"""`fraud drift`: catches the generator's scenarios, stays quiet on clean traffic, reports and publishes."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fraudcore.bundle import load_bundle, save_bundle
from fraudcore.registry import LoadedModel, Registry
from jobs.drift.detection import DriftResult, detect_drift
from jobs.drift.statistics import Backend
from jobs.drift.window import from_frame
from tests.conftest import TEST_FRAUD_RATE, TrainedStore, make_settings
from tests.pg import Fraud, log_traffic
from training.data import load_source, load_training_data, split, synthetic_source
from training.synthetic import LABEL, SCENARIOS, generate
from training.train import TrainConfig, train

WINDOW_ROWS = 2_000
WINDOWS = 20


def window(seed: int, scenario: str | None = None, rows: int = WINDOW_ROWS) -> pd.DataFrame:
    return generate(rows=rows, seed=seed, fraud_rate=TEST_FRAUD_RATE, scenario=scenario)


@pytest.fixture(scope="module")
def champion(trained_store: TrainedStore) -> LoadedModel:
    return Registry(trained_store.settings).load(
        f"models:/{trained_store.settings.registered_model}@champion"
    )


def drifted(champion: LoadedModel, frame: pd.DataFrame, backend: Backend | None = None) -> DriftResult:
    """The check with the default settings (family-wise p < 0.01, Bonferroni, 1,000 rows at least,
    alibi-detect) or another backend."""
    defaults = make_settings(Path(".fraud"))
    return detect_drift(
        champion,
        from_frame(frame, champion.bundle.card.schema, "generated"),
        correction=defaults.drift_correction,
        p_value=defaults.drift_p_value,
        min_rows=defaults.drift_min_rows,
        backend=backend or defaults.drift_backend,
    )[0]


def test_false_positive_rate_on_clean_windows(champion: LoadedModel) -> None:
    alarms = sum(drifted(champion, window(1_000 + i)).detected for i in range(WINDOWS))
    assert alarms <= 2, f"{alarms} false alarms in {WINDOWS} clean windows of {WINDOW_ROWS} rows"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_detects_each_scenario(champion: LoadedModel, scenario: str) -> None:
    found = sum(drifted(champion, window(2_000 + i, scenario)).detected for i in range(WINDOWS))
    assert found >= WINDOWS - 2, f"{scenario}: detected in {found} of {WINDOWS} windows"


def test_new_fraud_pattern_shows_in_the_labelled_performance(champion: LoadedModel) -> None:
    result = drifted(champion, window(3_000, "new-fraud-pattern"))
    assert result.performance is not None
    assert {"V1", "V2", "V5"} <= set(result.drifted_features)
    assert result.performance.recall is not None
    assert result.performance.recall < result.performance.holdout_recall / 2


def test_scipy_backend_gives_the_same_check(champion: LoadedModel) -> None:
    frame = window(3_001, "amount-inflation")
    alibi, scipy = (drifted(champion, frame, backend) for backend in ("alibi-detect", "scipy"))
    assert scipy.detected
    assert "Amount" in scipy.drifted_features
    assert scipy.drifted_features == alibi.drifted_features
    assert scipy.score.drifted == alibi.score.drifted
    assert scipy.threshold == pytest.approx(alibi.threshold)
    tested = [*scipy.features.values(), scipy.score], [*alibi.features.values(), alibi.score]
    p_values = [[test.p_value for test in tests] for tests in tested]
    # alibi-detect keeps p-values in float32, where the smallest ones lose their precision.
    np.testing.assert_allclose(*p_values, rtol=1e-6, atol=float(np.finfo(np.float32).tiny))


class Pushgateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[str]:
    Pushgateway.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def paysim_champion(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """An XGBoost model of the PaySim-style data set (a categorical `type`), as a bundle."""
    loaded = load_training_data(synthetic_source(30_000, 3, fraud_rate=0.01, dataset="paysim"))
    settings = make_settings(Path(".fraud"))
    model = train(
        split(loaded.frame, loaded.schema), TrainConfig.from_settings(settings, "xgboost", rounds=60), "", ""
    )
    path = tmp_path_factory.mktemp("paysim")
    save_bundle(path, model.scorer, model.card, model.reference)
    return LoadedModel(load_bundle(path), "paysim", "1")


@pytest.mark.parametrize("backend", ["alibi-detect", "scipy"])
def test_a_shift_in_a_category_mix_is_caught_and_named(
    paysim_champion: LoadedModel, backend: Backend
) -> None:
    def paysim(seed: int, scenario: str | None = None) -> pd.DataFrame:
        return load_source(synthetic_source(WINDOW_ROWS, seed, scenario, 0.01, dataset="paysim"))

    clean = drifted(paysim_champion, paysim(71), backend)
    assert not clean.detected, clean.drifted_features
    shifted = drifted(paysim_champion, paysim(72, "type-mix-shift"), backend)
    assert shifted.detected and "type" in shifted.drifted_features
    assert shifted.features["type"].p_value < 1e-6
    assert shifted.features["type"].distance > 1  # a chi-square statistic: a KS distance is at most 1


def test_drift_job_on_the_audit_log(
    trained_store: TrainedStore,
    champion: LoadedModel,
    audit_dsn: str,
    pushgateway: str,
    tmp_path: Path,
    fraud: Fraud,
) -> None:
    log_traffic(audit_dsn, window(4_000, "amount-inflation", rows=1_000), champion.bundle.card.schema)
    env = {"FRAUD_HOME": str(trained_store.settings.home), "FRAUD_AUDIT_DSN": audit_dsn}

    result = fraud("drift", "--out", str(tmp_path / "report"), FRAUD_PUSHGATEWAY_URL=pushgateway, **env)

    assert result.code == 4, result.err
    assert "drift detected" in result.out
    assert "Amount" in result.out
    found = json.loads((tmp_path / "report" / "drift.json").read_text())
    assert found["detected"] is True
    assert found["window_rows"] == 1_000
    assert "Amount" in found["drifted_features"]
    assert found["performance"] is None
    page = (tmp_path / "report" / "drift.html").read_text()
    assert page.count("<svg") == len(found["drifted_features"]) + found["score"]["drifted"]
    [(method, path, body)] = Pushgateway.received
    assert (method, path) == ("PUT", "/metrics/job/fraud-drift")
    assert "fraud_drift_detected 1.0" in body
    assert 'fraud_drift_p_value{feature="Amount"}' in body
    for name in ("share_of_drifted_features", "score_p_value", "last_run_timestamp_seconds"):
        assert f"fraud_drift_{name} " in body
    client = Registry(trained_store.settings).client
    experiment = client.get_experiment_by_name(trained_store.settings.experiment)
    [run] = client.search_runs([experiment.experiment_id], "tags.`fraud.job` = 'drift'", max_results=1)
    assert run.data.tags["drift_detected"] == "true"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"drift.json", "drift.html"}

    narrower = fraud("drift", "--rows", "1000", "--since", "1h", "--out", str(tmp_path / "narrow"), **env)
    assert narrower.code == 4, narrower.err
    assert "audit log (last 1,000 rows of the last 1h)" in narrower.out
    as_cronjob = fraud("drift", "--no-fail-on-drift", "--out", str(tmp_path / "cron"), **env)
    assert as_cronjob.code == 0, as_cronjob.err
    assert "drift detected" in as_cronjob.out


def test_clean_csv_window_with_labels(trained_store: TrainedStore, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "window.csv"
    window(5_001).to_csv(path, index=False)
    result = fraud(
        "drift", "--data", str(path), "--out", str(tmp_path), FRAUD_HOME=str(trained_store.settings.home)
    )
    assert result.code == 0, result.err
    assert "no drift" in result.out
    assert "champion on 2,000 labelled rows" in result.out
    assert json.loads((tmp_path / "drift.json").read_text())["performance"]["labelled_rows"] == 2_000


def test_classifier_detector(trained_store: TrainedStore, tmp_path: Path, fraud: Fraud) -> None:
    path = tmp_path / "window.csv"
    window(5_002, "amount-inflation", rows=1_000).drop(columns=[LABEL]).to_csv(path, index=False)
    home = str(trained_store.settings.home)
    result = fraud(
        "drift", "--data", str(path), "--detector", "classifier", "--out", str(tmp_path), FRAUD_HOME=home
    )
    assert result.code == 4, result.err
    assert "domain classifier: p =" in result.out


def test_problems_are_one_line(
    trained_store: TrainedStore, audit_dsn: str, tmp_path: Path, fraud: Fraud
) -> None:
    home = str(trained_store.settings.home)
    small = tmp_path / "small.csv"
    window(5_003, rows=100).to_csv(small, index=False)
    cases = {
        "too few rows": (["--data", str(small)], {}, "fewer than the 1,000 a drift check needs"),
        "empty window": ([], {"FRAUD_AUDIT_DSN": audit_dsn}, "the window is empty"),
        "database down": ([], {"FRAUD_AUDIT_DSN": "postgresql://fraud@127.0.0.1:1/fraud"}, "unreachable"),
        "no database": ([], {}, "no audit database configured"),
        "classifier without alibi-detect": (
            ["--data", str(small), "--detector", "classifier"],
            {"FRAUD_DRIFT_BACKEND": "scipy"},
            "the classifier detector needs alibi-detect",
        ),
        "no champion": (
            ["--data", str(small)],
            {"FRAUD_HOME": str(tmp_path / "empty")},
            "not in the registry",
        ),
    }
    for name, (args, env, message) in cases.items():
        result = fraud("drift", *args, **{"FRAUD_HOME": home, **env})
        assert result.code == 1, name
        assert result.err.startswith("error: "), (name, result.err)
        assert message in result.err, (name, result.err)
        assert len(result.err.strip().splitlines()) == 1, (name, result.err)
    assert fraud("drift", "--since", "yesterday", FRAUD_HOME=home).code == 2
