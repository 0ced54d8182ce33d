"""`fraud canary` argument handling (no cluster needed: bad input is refused before connecting).

The behaviour against a real kube-apiserver is covered in tests/chart/test_canary.py.
"""

import pytest
from typer.testing import CliRunner

from fraudcore.errors import InvalidInputError
from jobs.canary import CanaryState, parse_percent
from jobs.cli import app


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("10", 10), ("100", 100), ("25%", 25), (" 7 ", 7)])
def test_parse_percent(text: str, value: int) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["101", "-1", "", "ten", "12.5", "1e2", "%"])
def test_parse_percent_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="whole number from 0 to 100"):
        parse_percent(text)


def test_cli_refuses_bad_percentage_before_touching_the_cluster(tmp_path) -> None:
    missing = tmp_path / "no-kubeconfig"
    result = CliRunner().invoke(app, ["canary", "set", "150", "--kubeconfig", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: percentage must be a whole number from 0 to 100, got '150'"


def test_cli_without_cluster_config_is_one_clear_error(tmp_path) -> None:
    missing = tmp_path / "no-kubeconfig"
    result = CliRunner().invoke(app, ["canary", "status", "--kubeconfig", str(missing)])
    assert result.exit_code != 0
    assert "no usable Kubernetes configuration" in str(result.exception)


def test_state_weights_add_up() -> None:
    state = CanaryState("Standard", champion_version=3, challenger_version=4, challenger_weight=10)
    assert (state.champion_weight, state.challenger_weight) == (90, 10)
