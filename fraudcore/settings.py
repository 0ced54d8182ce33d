"""The one typed settings object. Every environment variable the project reads is declared here."""

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraudcore.names import CHAMPION, Role

DriftCorrection = Literal["bonferroni", "fdr"]
"""Multiple-testing corrections over the drift check's family of tests."""

AuditReasons = Literal["flagged", "all", "none"]
"""Which audited rows carry their reason codes: the rows flagged as fraud, every row, or none."""

DriftBackend = Literal["alibi-detect", "scipy"]
"""What runs the drift check's per-column tests (jobs/drift/statistics.py)."""


class Settings(BaseSettings):
    """Configuration from `FRAUD_*` environment variables (and MLflow's own `MLFLOW_TRACKING_URI`)."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", frozen=True, populate_by_name=True)

    home: Path = Path(".fraud")
    """Local state directory: embedded MLflow store, model cache, generated data, reports."""

    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "FRAUD_TRACKING_URI")
    )
    """MLflow tracking (and registry) URI; unset means an embedded SQLite store under `home`."""

    registered_model: str = "fraud-detector"
    """Name of the registered model in the MLflow registry."""

    experiment: str = "fraud-detection"
    """MLflow experiment that training, drift and retraining runs are logged to."""

    model_uri: str = "models:/fraud-detector@champion"
    """Model the predictor serves: `models:/<name>/<version>`, `models:/<name>@<alias>` or a path."""

    model_role: Role = CHAMPION
    """Role the predictor plays in the canary; reported in headers and metrics."""

    fail_fast: bool = False
    """Exit with status 1 when the model cannot be loaded at start-up (Kubernetes then restarts the
    pod, with its crash-loop back-off of up to 5 minutes between tries). Off: the server stays live
    and not ready, and retries every `load_retry_seconds`, so it serves within seconds of the
    registry answering (or the version appearing)."""

    load_retry_seconds: float = Field(default=5.0, gt=0)
    """How often a predictor whose model could not be loaded tries again (with `fail_fast` off)."""

    max_batch_rows: int = Field(default=100_000, gt=0)
    """Largest batch one inference request may carry; larger ones are refused with HTTP 413."""

    grpc_enabled: bool = False
    """Also serve KServe's v2 gRPC endpoint (port 8081, `--grpc_port`). Off by default: only the
    HTTP path is tested against the protocol, and only it sets the request log, the rejection metrics,
    request ids and the model headers; `--enable_grpc` on the command line wins over this."""

    api_token: SecretStr | None = None
    """Optional shared token callers must send as `Authorization: Bearer <token>`."""

    shadow_port: int | None = Field(default=None, ge=1, le=65535)
    """A second HTTP port for mirrored copies of client requests (`fraud canary shadow`): they are
    answered as usual and recorded as role `shadow`. Unset: no second port."""

    audit_dsn: str | None = None
    """PostgreSQL DSN for the prediction audit log; unset disables auditing."""

    audit_buffer_rows: int = Field(default=50_000, gt=0)
    """Scored rows held in memory while the audit database is unreachable; older ones are dropped."""

    audit_reasons: AuditReasons = "flagged"
    """Which audit rows carry their reason codes (`reasons`): `flagged` (rows scored as fraud), `all`
    or `none`. The audit writer's thread computes them, off the request path, unless the request
    asked for them already."""

    pushgateway_url: str | None = None
    """Prometheus Pushgateway that jobs push their metrics to; unset disables pushing."""

    drift_window_rows: int = Field(default=2_000, gt=0)
    """Drift check: how many of the most recently logged transactions make up the window."""

    drift_min_rows: int = Field(default=1_000, gt=0)
    """Drift check: a window with fewer rows is refused (too small to tell drift from noise: at 500
    rows the new-fraud-pattern scenario is caught only about half the time)."""

    drift_p_value: float = Field(default=0.01, gt=0, lt=1)
    """Drift check: family-wise significance level of the 31 tests (features and score), i.e. the
    highest false-alarm rate of a check on clean traffic."""

    drift_correction: DriftCorrection = "bonferroni"
    """Drift check: multiple-testing correction across features (Bonferroni or Benjamini-Hochberg FDR)."""

    drift_backend: DriftBackend = "alibi-detect"
    """Drift check: what runs the per-column tests. `alibi-detect` (its `TabularDrift`) is under the
    Business Source License 1.1 from 0.11.5 on, which needs a commercial licence in production;
    `scipy` runs the same tests and correction with SciPy alone (BSD) and never imports alibi-detect,
    but cannot run the `classifier` detector."""

    retrain_window_days: float = Field(default=30.0, gt=0)
    """Retraining: labelled transactions from the audit log younger than this join the training data."""

    retrain_only_on_drift: bool = False
    """Retraining: skip the run unless the most recent drift check found drift."""

    retrain_canary_percent: int | None = Field(default=None, ge=0, le=100)
    """Retraining: send this share of traffic to a challenger that passed the gate; unset: no canary."""

    cost_missed_fraud: float = Field(default=100.0, gt=0)
    """Cost of letting one fraudulent transaction through; used to choose the decision threshold."""

    cost_false_alarm: float = Field(default=5.0, gt=0)
    """Cost of blocking one legitimate transaction; used to choose the decision threshold."""

    xgboost_rounds: int = Field(default=400, gt=0)
    """Training: XGBoost boosting rounds (early stopping on validation PR-AUC applies)."""

    xgboost_max_depth: int = Field(default=4, gt=0)
    """Training: XGBoost tree depth."""

    xgboost_learning_rate: float = Field(default=0.08, gt=0, le=1)
    """Training: XGBoost learning rate."""

    lightgbm_rounds: int = Field(default=400, gt=0)
    """Training: LightGBM boosting rounds (early stopping on validation PR-AUC applies)."""

    lightgbm_num_leaves: int = Field(default=31, gt=1)
    """Training: LightGBM leaves per tree."""

    lightgbm_learning_rate: float = Field(default=0.05, gt=0, le=1)
    """Training: LightGBM learning rate."""

    logistic_c: float = Field(default=1.0, gt=0)
    """Training: inverse L2 regularisation strength of the logistic regression."""

    gate_min_roc_auc: float = Field(default=0.90, ge=0, le=1)
    """Validation gate: lowest ROC-AUC on the holdout a version may have to get an alias."""

    gate_min_pr_auc: float = Field(default=0.50, ge=0, le=1)
    """Validation gate: lowest PR-AUC on the holdout a version may have to get an alias."""

    gate_max_regression: float = Field(default=0.02, ge=0, le=1)
    """Validation gate: largest drop in ROC-AUC or PR-AUC against the champion on the same holdout."""

    seed: int = 42
    """Seed for data generation, splits and model training."""

    log_level: str = "INFO"
    """Log level of services and jobs."""

    @property
    def data_dir(self) -> Path:
        """Generated transaction data (`fraud data generate`)."""
        return self.home / "data"

    @property
    def resolved_tracking_uri(self) -> str:
        """The tracking URI to use; the embedded store when none is configured."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        """Where the embedded store keeps artifacts."""
        return (self.home / "artifacts").resolve()

    @property
    def model_cache_dir(self) -> Path:
        """Downloaded model bundles, kept so a restart can serve without the registry."""
        return (self.home / "models").resolve()


def quiet_mlflow() -> None:
    """MLflow reads some options only from the environment: no progress bars in logs and jobs."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A model bundle is self-contained; copying this project's uv.lock into every model is noise.
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
