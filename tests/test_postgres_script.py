"""scripts/postgres.sh, the throwaway PostgreSQL of the tests, the demo and the benchmarks."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.pg import SCRIPT, Postgres


def test_a_taken_port_is_refused_with_one_line(postgres: Postgres) -> None:
    # Under /tmp, like the fixture's cluster, so the `postgres` user can reach it when run as root.
    directory = Path(tempfile.mkdtemp(prefix="fraud-pg-"))
    try:
        env = {**os.environ, "FRAUD_PG_DIR": str(directory), "FRAUD_PG_PORT": str(postgres.port)}
        proc = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == (
        f"postgres.sh: port {postgres.port} on 127.0.0.1 is taken (another PostgreSQL?); "
        "choose another with FRAUD_PG_PORT"
    )
