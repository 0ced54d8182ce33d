"""`fraud canary` argument handling (no cluster needed: bad input is refused before connecting)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli import app


@pytest.mark.parametrize("command", ["set", "shadow"])
def test_cli_refuses_bad_percentage_before_touching_the_cluster(tmp_path, command: str) -> None:
    missing = tmp_path / "no-kubeconfig"
    result = CliRunner().invoke(app, ["canary", command, "150", "--kubeconfig", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: percentage must be a whole number from 0 to 100, got '150'"


def test_shadow_takes_the_options_of_set() -> None:
    help_text = CliRunner().invoke(app, ["canary", "shadow", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--challenger-version", "--namespace", "--name", "--kubeconfig", "--context"):
        assert option in help_text
    assert "Copy PERCENT % of the requests to the challenger" in help_text


def test_cli_without_cluster_config_is_one_clear_error(tmp_path) -> None:
    missing = tmp_path / "no-kubeconfig"
    result = CliRunner().invoke(app, ["canary", "status", "--kubeconfig", str(missing)])
    assert result.exit_code != 0
    assert "no usable Kubernetes configuration" in str(result.exception)


def test_kubectl_plugin_entry_refuses_bad_percentage() -> None:
    code = "import sys; from cli.canary import plugin_main; sys.argv[1:] = ['set', '-5']; plugin_main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    # Only the error line counts: interpreter warnings (e.g. under coverage) may precede it.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: percentage must be a whole number from 0 to 100, got '-5'"]
