"""The canary plan as the chart writes it: defaults, the camelCase mapping both ways, refusals."""

import pytest

from fraudcore.errors import UsageError
from jobs.canary.plan import Plan, Step


def test_defaults_are_the_documented_walk() -> None:
    plan = Plan()
    assert [str(s) for s in plan.steps] == ["shadow 100 %", "5 %", "10 %", "25 %", "50 %"]
    assert (plan.min_minutes, plan.max_minutes, plan.min_requests) == (10, 60, 2000)
    assert plan.alerts_per_hour is None


def test_empty_mapping_is_the_default_plan() -> None:
    assert Plan.from_mapping({}) == Plan()


def test_mapping_round_trips() -> None:
    plan = Plan.from_mapping(
        {
            "steps": ["shadow 50", "shadow 100", 10, "50%"],
            "minMinutes": 4,
            "alertsPerHour": 120.5,
            "minFrauds": 10,
        }
    )
    assert plan.steps == (Step(50, shadow=True), Step(100, shadow=True), Step(10), Step(50))
    assert (plan.min_minutes, plan.alerts_per_hour, plan.min_frauds) == (4, 120.5, 10)
    assert Plan.from_mapping(plan.to_mapping()) == plan
    assert plan.to_mapping()["steps"] == ["shadow 50", "shadow 100", 10, 50]


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"stepz": [5]}, "stepz"),
        ({"steps": []}, "steps"),
        ({"steps": [0]}, "steps"),
        ({"steps": [101]}, "steps"),
        ({"steps": [5.5]}, "steps"),
        ({"steps": ["half"]}, "steps"),
        ({"steps": [10, 5]}, "steps"),
        ({"steps": [5, "shadow 100"]}, "steps"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": "0.01"}, "alpha"),
        ({"minRequests": 10.5}, "minRequests"),
        ({"minRequests": True}, "minRequests"),
        ({"flagRatio": 1}, "flagRatio"),
        ({"latencyQuantile": 1}, "latencyQuantile"),
        ({"recallMargin": -0.1}, "recallMargin"),
        ({"alertsPerHour": 0}, "alertsPerHour"),
        ({"minMinutes": 30, "maxMinutes": 20}, "maxMinutes"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(UsageError) as caught:
        Plan.from_mapping(mapping)
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


def test_a_plan_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(UsageError, match="mapping"):
        Plan.from_mapping([5, 10])  # type: ignore[arg-type]
