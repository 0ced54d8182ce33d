"""Fixtures for the audit, drift, labels and retraining tests.

`postgres`: one throwaway cluster per session (scripts/postgres.sh); `audit_dsn`: a fresh audit table
per test; `fraud`: the `fraud` CLI run in-process, as a user would run it (exit code, stdout, stderr).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from cli import main
from fraudcore import auditdb
from fraudcore.schema import Schema
from model_server.audit import AuditLog
from tests.support import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


@dataclass
class Postgres:
    """A cluster on a loopback port that tests may stop and start again (the outage path)."""

    directory: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://fraud@127.0.0.1:{self.port}/fraud"

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def _script(self, command: str) -> None:
        env = {**os.environ, "FRAUD_PG_DIR": str(self.directory), "FRAUD_PG_PORT": str(self.port)}
        subprocess.run([str(SCRIPT), command], env=env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # Under /tmp (not pytest's private tmp) so the `postgres` user can reach it when tests run as root.
    server = Postgres(Path(tempfile.mkdtemp(prefix="fraud-pg-")), free_port())
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def audit_dsn(postgres: Postgres) -> str:
    """The DSN of a running server whose audit table does not exist yet."""
    postgres.start()
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {auditdb.TABLE}")
    return postgres.dsn


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


Fraud = Callable[..., CliResult]


@pytest.fixture
def fraud(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> Fraud:
    """`fraud(*args, FRAUD_X="…")` runs the CLI with those environment variables and nothing else
    (the root logger it configures is restored after each test by tests/conftest.py)."""

    def run(*args: str, **env: str) -> CliResult:
        capsys.readouterr()
        code = 0
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            patch.setattr(sys, "argv", ["fraud", *args])
            try:
                main()
            except SystemExit as e:
                code = int(e.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def log_traffic(dsn: str, frame: pd.DataFrame, schema: Schema, batch: int = 100) -> pd.DataFrame:
    """Score-log the frame's rows as the predictor does (the encoded matrix, and the categorical values
    as sent) in requests of `batch` rows; returns the matching label file rows."""
    log = AuditLog(dsn, buffer_rows=100_000, schema=schema, flush_interval_s=0.05)
    log.start()
    x = schema.encode(frame)
    text = {f.name: frame[f.name].to_numpy(object) for f in schema.features if f.kind == "categorical"}
    for start in range(0, len(x), batch):
        part = slice(start, start + batch)
        scores = np.zeros(len(x[part]), np.float32)
        sent = {name: values[part] for name, values in text.items()}
        log.record(f"req-{start}", x[part], scores, scores > 0.5, "1", "champion", 0.001, sent)
    log.close()
    return pd.DataFrame(
        {
            "request_id": [f"req-{i - i % batch}" for i in range(len(frame))],
            "row": [i % batch for i in range(len(frame))],
            "label": frame[schema.label].to_numpy(),
        }
    )
