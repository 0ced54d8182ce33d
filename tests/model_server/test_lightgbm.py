"""A LightGBM model with a categorical feature, trained by `fraud train --model lightgbm` into a real
MLflow tracking server and served by the real predictor: its scores over HTTP are the bundle's."""

from pathlib import Path

import httpx
import numpy as np

from fraudcore.registry import Registry
from tests.conftest import make_settings
from tests.model_server.test_any_schema import INFER, LABEL, columns, scores_of, transactions
from tests.model_server.test_server import MODEL, launch, server_env
from tests.pg import Fraud
from tests.support import mlflow_server, running


def test_lightgbm_trained_registered_and_served(tmp_path: Path, fraud: Fraud) -> None:
    """The predictor starts first, on the empty registry: it waits, not ready, saying for which
    version, and serves the version once it is trained — the same process, no restart."""
    data = tmp_path / "transactions.csv"
    transactions(4000, seed=3).to_csv(data, index=False)
    home = tmp_path / ".fraud"
    uri = f"models:/{MODEL}/1"
    with mlflow_server(tmp_path / "mlflow") as url:
        server_home = tmp_path / "server-home"  # its own cache: nothing the trainer downloaded
        env = server_env(
            server_home, MLFLOW_TRACKING_URI=url, FRAUD_MODEL_URI=uri, FRAUD_LOAD_RETRY_SECONDS="0.5"
        )
        server = launch(tmp_path / "server", env)
        with running(server):
            ready = httpx.get(f"{server.wait('/v2/health/live').url}/v2/health/ready")
            assert ready.status_code == 503 and f"waiting for {uri}" in ready.json()["error"]

            env = {"FRAUD_HOME": str(home), "MLFLOW_TRACKING_URI": url}
            trained = fraud("train", "--model", "lightgbm", "--data", str(data), "--label", LABEL, **env)
            assert trained.code == 0, trained.err
            assert "version 1 → @champion" in trained.out
            bundle = Registry(make_settings(home, tracking_uri=url)).load(uri).bundle
            assert bundle.card.kind == "lightgbm"
            assert {f.name: f.kind for f in bundle.card.schema.features}["channel"] == "categorical"
            again = fraud("train", "--if-missing", "1", "--data", str(data), "--label", LABEL, **env)
            assert again.code == 0 and "version 1 is registered already" in again.out
            assert not Registry(make_settings(home, tracking_uri=url)).has_version("2")

            server.wait()  # fails if the process exited on the way
            metadata = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
            assert metadata["platform"] == "lightgbm"
            for rows in (transactions(5, seed=11), transactions(700, seed=12)):  # small and large batches
                rows = rows.drop(columns=LABEL)
                reply = httpx.post(server.url + INFER, json={"inputs": columns(rows)}, timeout=30)
                expected = bundle.scorer.predict_proba(bundle.card.schema.encode(rows))
                np.testing.assert_allclose(scores_of(reply), expected, atol=1e-6)
            # Categorical splits convert: the 5 rows were scored by ONNX Runtime, the 700 by LightGBM.
            assert any("scored by ONNX Runtime" in r["message"] for r in server.log_records())
