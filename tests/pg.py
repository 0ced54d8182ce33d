"""PostgreSQL fixtures: one throwaway cluster per session (scripts/postgres.sh), a fresh table per test."""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from fraudcore import auditdb

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
