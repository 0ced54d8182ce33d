"""scripts/postgres.sh, the throwaway PostgreSQL of the tests, the demo and the benchmarks."""

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.pg import SCRIPT, Postgres
from tests.support import free_port


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


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_directory_the_postgres_user_cannot_reach_is_moved_where_it_can() -> None:
    private = Path(tempfile.mkdtemp(prefix="fraud-private-"))  # mode 0700, like /root
    env = {**os.environ, "FRAUD_PG_DIR": str(private / "checkout" / "pg"), "FRAUD_PG_PORT": str(free_port())}
    run = functools.partial(subprocess.run, env=env, capture_output=True, text=True, timeout=120)
    try:
        started = run([str(SCRIPT), "start"])
        assert started.returncode == 0, started.stderr
        moved = re.search(r"cannot reach \S+; the cluster lives in (\S+)", started.stderr)
        assert moved, started.stderr
        with psycopg.connect(started.stdout.strip(), connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert run([str(SCRIPT), "dsn"]).stdout == started.stdout
    finally:
        destroyed = run([str(SCRIPT), "destroy"])
        shutil.rmtree(private, ignore_errors=True)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not Path(moved.group(1)).exists()
