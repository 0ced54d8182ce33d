"""The canary's pieces that need no cluster: percentages, state, live numbers from Prometheus.

The behaviour against a real kube-apiserver is covered in tests/chart/test_canary.py.
"""

from collections.abc import Iterator

import pytest

from fraudcore.errors import InvalidInputError, UnavailableError
from fraudcore.promql import live_queries
from jobs.canary.metrics import live_numbers
from jobs.canary.state import CanaryState, parse_percent
from tests.support import free_port, prometheus_endpoint


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("10", 10), ("100", 100), ("25%", 25), (" 7 ", 7)])
def test_parse_percent(text: str, value: int) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["101", "-1", "", "ten", "12.5", "1e2", "%"])
def test_parse_percent_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="whole number from 0 to 100"):
        parse_percent(text)


def test_state_weights_add_up() -> None:
    state = CanaryState("Standard", champion_version=3, challenger_version=4, challenger_weight=10)
    assert (state.champion_weight, state.challenger_weight) == (90, 10)


@pytest.fixture
def prometheus_api() -> Iterator[tuple[str, list[str]]]:
    """Every query answered with one sample per role."""
    samples = [
        {"metric": {"role": role}, "value": [0, v]}
        for role, v in (("champion", "0.9"), ("challenger", "0.1"))
    ]
    with prometheus_endpoint(lambda _: samples) as endpoint:
        yield endpoint


def test_live_numbers_per_role(prometheus_api: tuple[str, list[str]]) -> None:
    url, queries = prometheus_api
    numbers = live_numbers(url, "fraud")
    assert set(numbers) == {"champion", "challenger"}
    assert numbers["champion"] == dict.fromkeys(live_queries("fraud"), 0.9)
    assert queries == list(live_queries("fraud").values())
    assert all('namespace="fraud"' in q for q in queries)


def test_live_numbers_unreachable() -> None:
    with pytest.raises(UnavailableError, match="not reachable"):
        live_numbers(f"http://127.0.0.1:{free_port()}", "fraud", timeout=1)
