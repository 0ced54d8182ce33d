"""Shadow traffic in Standard mode: the mirror filter read from the route and the JSON patches that
add, change and remove it (the same patches against a real kube-apiserver: tests/chart/test_canary.py)."""

from typing import Any

import pytest

from jobs.canary.state import CanaryError, CanaryState, knative_state, standard_state
from jobs.canary.strategies import KnativeStrategy, StandardStrategy

NAME = "fraud"
CHALLENGER_SVC = f"{NAME}-challenger-predictor"
SHADOW_SVC = f"{NAME}-challenger-shadow"
PATH = "/spec/rules/0/filters"
OTHER = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}


class Recorder:
    """Stands in for `Objects`: keeps the patches instead of sending them."""

    namespace = "fraud"

    def __init__(self) -> None:
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []

    def patch(self, kind: tuple[str, str, str], name: str, ops: list[dict[str, Any]]) -> None:
        self.patches.append((name, ops))


def isvc(role: str, version: int, ready: bool = True) -> dict[str, Any]:
    env = [{"name": "FRAUD_MODEL_URI", "value": f"models:/fraud-detector/{version}"}]
    condition = {
        "type": "Ready",
        "status": str(ready),
        "message": "Deployment does not have minimum availability",
    }
    return {
        "metadata": {"name": f"{NAME}-{role}"},
        "spec": {"predictor": {"containers": [{"env": env}]}},
        "status": {"conditions": [condition]},
    }


def mirror(percent: int | None = None, service: str = SHADOW_SVC, **extra: Any) -> dict[str, Any]:
    backend: dict[str, Any] = {"backendRef": {"name": service, "port": 80}, **extra}
    if percent is not None:
        backend["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": backend}


def route(filters: list[dict[str, Any]] | None = None, weight: int = 0) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "backendRefs": [
            {"name": f"{NAME}-champion-predictor", "port": 80, "weight": 100 - weight},
            {"name": CHALLENGER_SVC, "port": 80, "weight": weight},
        ]
    }
    if filters is not None:
        rule["filters"] = filters
    return {"metadata": {"name": NAME, "resourceVersion": "42"}, "spec": {"rules": [rule]}}


def strategy(live: dict[str, Any], ready: bool = True) -> tuple[StandardStrategy, Recorder]:
    recorder = Recorder()
    found = StandardStrategy(recorder, NAME, isvc("champion", 3), isvc("challenger", 4, ready), live)  # type: ignore[arg-type]
    return found, recorder


@pytest.mark.parametrize(
    ("filters", "share"),
    [
        (None, 0),
        ([], 0),
        ([OTHER], 0),
        ([OTHER, mirror(30)], 30),
        ([mirror()], 100),  # neither percent nor fraction: Gateway API mirrors everything
        ([mirror(fraction={"numerator": 1, "denominator": 8})], 12),
        ([mirror(fraction={"numerator": 5})], 5),
        ([mirror(50, service="someone-else")], 0),
    ],
)
def test_state_reads_the_mirror_to_the_challenger(filters: list | None, share: int) -> None:
    state = standard_state(isvc("champion", 3), isvc("challenger", 4), route(filters, weight=10))
    assert state == CanaryState("Standard", 3, 4, 10, shadow_percent=share)


def test_knative_has_no_shadow() -> None:
    single = isvc("champion", 3)
    single["spec"]["predictor"]["canaryTrafficPercent"] = 20
    assert knative_state(single).shadow_percent == 0
    with pytest.raises(CanaryError, match="Knative mode: shadow traffic needs the HTTPRoute"):
        KnativeStrategy(Recorder(), NAME, single).set_shadow(10, None)  # type: ignore[arg-type]


def test_adds_the_filters_when_the_rule_has_none() -> None:
    """No filters to test against: the patch is guarded by the route's resourceVersion."""
    found, recorder = strategy(route())
    assert found.set_shadow(25, None) == [f"mirror 25% to {SHADOW_SVC}"]
    assert recorder.patches == [
        (
            NAME,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "add", "path": PATH, "value": [mirror(25)]},
            ],
        )
    ]


def test_adds_the_mirror_after_other_filters() -> None:
    found, recorder = strategy(route([OTHER]))
    found.set_shadow(10, None)
    assert recorder.patches == [
        (
            NAME,
            [
                {"op": "test", "path": PATH, "value": [OTHER]},
                {"op": "add", "path": f"{PATH}/-", "value": mirror(10)},
            ],
        )
    ]


def test_replaces_the_share_in_place() -> None:
    live = [OTHER, mirror(fraction={"numerator": 1, "denominator": 4})]
    found, recorder = strategy(route(live))
    assert found.set_shadow(50, None) == [f"mirror 50% to {SHADOW_SVC}"]
    assert recorder.patches == [
        (
            NAME,
            [
                {"op": "test", "path": PATH, "value": live},
                {"op": "replace", "path": f"{PATH}/1", "value": mirror(50)},
            ],
        )
    ]


@pytest.mark.parametrize(
    ("live", "removed"),
    [([mirror(20)], PATH), ([mirror(20), OTHER], f"{PATH}/0"), ([OTHER, mirror(20)], f"{PATH}/1")],
)
def test_zero_removes_only_the_mirror(live: list[dict[str, Any]], removed: str) -> None:
    found, recorder = strategy(route(live))
    assert found.set_shadow(0, None) == [f"mirror to {SHADOW_SVC} removed"]
    assert recorder.patches == [
        (NAME, [{"op": "test", "path": PATH, "value": live}, {"op": "remove", "path": removed}])
    ]


@pytest.mark.parametrize(
    ("live", "percent"), [(None, 0), ([OTHER], 0), ([mirror(20)], 20), ([mirror()], 100)]
)
def test_nothing_to_do_patches_nothing(live: list | None, percent: int) -> None:
    found, recorder = strategy(route(live))
    assert found.set_shadow(percent, None) == []
    assert recorder.patches == []


def test_refuses_more_copies_for_a_challenger_that_is_not_ready() -> None:
    found, recorder = strategy(route([mirror(20)]), ready=False)
    with pytest.raises(CanaryError) as refused:
        found.set_shadow(30, None)
    assert str(refused.value) == (
        f"InferenceService {NAME}-challenger is not Ready (Deployment does not have minimum availability): "
        f"no more requests are mirrored to it (kubectl describe inferenceservice {NAME}-challenger says why)"
    )
    assert recorder.patches == []
    assert found.set_shadow(5, None) == [f"mirror 5% to {SHADOW_SVC}"]  # fewer copies are allowed


def test_can_point_the_challenger_at_a_version_first() -> None:
    found, recorder = strategy(route())
    assert found.set_shadow(10, 5)[0] == f"{NAME}-challenger → models:/fraud-detector/5"
    assert [name for name, _ in recorder.patches] == [f"{NAME}-challenger", NAME]


@pytest.mark.parametrize("action", ["rollback", "promote"])
def test_rollback_and_promote_remove_the_mirror_with_the_weights_in_one_patch(action: str) -> None:
    found, recorder = strategy(route([OTHER, mirror(20)], weight=10))
    changes = found.rollback() if action == "rollback" else found.promote(None)[1]
    assert changes[-2:] == ["weights 100/0", f"mirror to {SHADOW_SVC} removed"]
    name, ops = recorder.patches[-1]
    assert name == NAME
    assert ops[-2:] == [
        {"op": "test", "path": PATH, "value": [OTHER, mirror(20)]},
        {"op": "remove", "path": f"{PATH}/1"},
    ]
    assert [op["path"] for op in ops if op["op"] == "replace"] == [
        "/spec/rules/0/backendRefs/0/weight",
        "/spec/rules/0/backendRefs/1/weight",
    ]
