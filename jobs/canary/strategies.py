"""How each deployment mode moves traffic, behind one interface.

Every operation starts from the live objects, computes the target state and patches only what
differs (JSON patches guarded by `test` ops), so repeating a command is a no-op.
"""

from collections.abc import Callable
from typing import Any, Protocol

from fraudcore.errors import NotFoundError
from fraudcore.names import (
    CHALLENGER,
    CHALLENGER_ANNOTATION,
    CHAMPION,
    CHAMPION_ANNOTATION,
    ROLE_ENV,
    URI_ENV,
    version_uri,
)
from jobs.canary.kube import Objects
from jobs.canary.state import (
    GATEWAY,
    KSERVE,
    MIRROR,
    CanaryError,
    CanaryState,
    Mode,
    backend_indexes,
    env_index,
    env_list,
    knative_state,
    mirror_index,
    not_ready,
    pinned_model,
    shadow_service,
    standard_state,
)

WaitReady = Callable[[str], None]


class Strategy(Protocol):
    """One release's canary in one deployment mode; each method returns the changes it made."""

    mode: Mode

    def state(self) -> CanaryState: ...

    def set_weight(self, percent: int, challenger_version: int | None) -> list[str]: ...

    def set_shadow(self, percent: int, challenger_version: int | None) -> list[str]: ...

    def promote(self, wait_ready: WaitReady | None) -> tuple[int, list[str]]:
        """The champion takes the challenger's version; returns that version and the changes."""
        ...

    def rollback(self) -> list[str]: ...


def _set_env_ops(isvc: dict[str, Any], var: str, value: str) -> list[dict[str, Any]]:
    """JSON patch ops setting an env var, guarded by a test of its name; none when already set."""
    i = env_index(isvc, var)
    if env_list(isvc)[i].get("value") == value:
        return []
    path = f"/spec/predictor/containers/0/env/{i}"
    return [
        {"op": "test", "path": f"{path}/name", "value": var},
        {"op": "replace", "path": f"{path}/value", "value": value},
    ]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class StandardStrategy:
    """Two InferenceServices, one per role; the HTTPRoute's backendRefs carry the weights, its
    optional `RequestMirror` filter the shadow share."""

    mode: Mode = "Standard"

    def __init__(self, objects: Objects, name: str, champion: dict, challenger: dict, route: dict) -> None:
        self.objects, self.name = objects, name
        self.champion, self.challenger, self.route = champion, challenger, route

    def state(self) -> CanaryState:
        return standard_state(self.champion, self.challenger, self.route)

    def set_weight(self, percent: int, challenger_version: int | None) -> list[str]:
        if percent > self.state().challenger_weight:
            self._refuse_unless_ready("no more traffic is sent to it")
        changes = self._set_version(self.challenger, challenger_version) if challenger_version else []
        return changes + self._patch_route(*self._weight_ops(percent))

    def set_shadow(self, percent: int, challenger_version: int | None) -> list[str]:
        if percent > self.state().shadow_percent:
            self._refuse_unless_ready("no more requests are mirrored to it")
        changes = self._set_version(self.challenger, challenger_version) if challenger_version else []
        return changes + self._patch_route(*self._mirror_ops(percent))

    def promote(self, wait_ready: WaitReady | None) -> tuple[int, list[str]]:
        version = pinned_model(self.challenger)[1]
        changes = self._set_version(self.champion, version)
        if changes and wait_ready:
            wait_ready(self.champion["metadata"]["name"])
        return version, changes + self.rollback()

    def rollback(self) -> list[str]:
        """All traffic to the champion and no more copies to the challenger, in one patch."""
        weight_ops, weight_changes = self._weight_ops(0)
        mirror_ops, mirror_changes = self._mirror_ops(0)
        return self._patch_route(weight_ops + mirror_ops, weight_changes + mirror_changes)

    def _refuse_unless_ready(self, consequence: str) -> None:
        name = self.challenger["metadata"]["name"]
        if problem := not_ready(self.challenger):
            raise CanaryError(
                f"InferenceService {name} is not Ready ({problem}): {consequence} "
                f"(kubectl describe inferenceservice {name} says why)"
            )

    def _patch_route(self, ops: list[dict[str, Any]], changes: list[str]) -> list[str]:
        if ops:
            self.objects.patch(GATEWAY, self.name, ops)
        return changes

    def _weight_ops(self, challenger_weight: int) -> tuple[list[dict[str, Any]], list[str]]:
        i_champion, i_challenger, refs = backend_indexes(
            self.route, self.champion["metadata"]["name"], self.challenger["metadata"]["name"]
        )
        ops: list[dict[str, Any]] = []
        for i, weight in ((i_champion, 100 - challenger_weight), (i_challenger, challenger_weight)):
            if refs[i].get("weight") != weight:
                path = f"/spec/rules/0/backendRefs/{i}"
                ops += [
                    {"op": "test", "path": f"{path}/name", "value": refs[i]["name"]},
                    {
                        "op": "replace" if "weight" in refs[i] else "add",
                        "path": f"{path}/weight",
                        "value": weight,
                    },
                ]
        return ops, [f"weights {100 - challenger_weight}/{challenger_weight}"] if ops else []

    def _mirror_ops(self, percent: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Add the mirror filter, set its share or remove it (other filters stay), guarded by a test
        of the filters as read (of the resourceVersion while the rule has none)."""
        if percent == self.state().shadow_percent:
            return [], []
        service = shadow_service(self.challenger["metadata"]["name"])
        backend = {"backendRef": {"name": service, "port": 80}, "percent": percent}
        mirror, path = {"type": MIRROR, "requestMirror": backend}, "/spec/rules/0/filters"
        change = f"mirror {percent}% to {service}" if percent else f"mirror to {service} removed"
        filters = self.route["spec"]["rules"][0].get("filters")
        if filters is None:
            version = self.route["metadata"]["resourceVersion"]
            guard = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
            return [guard, {"op": "add", "path": path, "value": [mirror]}], [change]
        i = mirror_index(self.route, service)
        if i is None:
            op = {"op": "add", "path": f"{path}/-", "value": mirror}
        elif percent == 0:
            op = {"op": "remove", "path": path if len(filters) == 1 else f"{path}/{i}"}
        else:
            op = {"op": "replace", "path": f"{path}/{i}", "value": mirror}
        return [{"op": "test", "path": path, "value": filters}, op], [change]

    def _set_version(self, isvc: dict[str, Any], version: int) -> list[str]:
        uri = version_uri(pinned_model(isvc)[0], version)
        ops = _set_env_ops(isvc, URI_ENV, uri)
        if not ops:
            return []
        self.objects.patch(KSERVE, isvc["metadata"]["name"], ops)
        return [f"{isvc['metadata']['name']} → {uri}"]


class KnativeStrategy:
    """One InferenceService whose newest revision gets `canaryTrafficPercent`."""

    mode: Mode = "Knative"

    def __init__(self, objects: Objects, name: str, isvc: dict) -> None:
        self.objects, self.name, self.isvc = objects, name, isvc

    def state(self) -> CanaryState:
        return knative_state(self.isvc)

    def set_weight(self, percent: int, challenger_version: int | None) -> list[str]:
        state = self.state()
        target = challenger_version or state.challenger_version
        return self._apply(champion=state.champion_version, challenger=target, weight=percent)

    def set_shadow(self, percent: int, challenger_version: int | None) -> list[str]:
        raise CanaryError(
            f"{self.name} runs in Knative mode: shadow traffic needs the HTTPRoute of Standard mode "
            "(predictor.deploymentMode=Standard)"
        )

    def promote(self, wait_ready: WaitReady | None) -> tuple[int, list[str]]:
        version = self.state().challenger_version
        changes = self._apply(champion=version, challenger=version, weight=0)
        if changes and wait_ready:
            wait_ready(self.name)
        return version, changes

    def rollback(self) -> list[str]:
        state = self.state()
        return self._apply(champion=state.champion_version, challenger=state.challenger_version, weight=0)

    def _apply(self, *, champion: int, challenger: int, weight: int) -> list[str]:
        """Bring the InferenceService to: serve `challenger` at `weight` % (or only the champion when
        weight is 0), with both versions recorded in its annotations."""
        isvc = self.isvc
        serve, role = (challenger, CHALLENGER) if weight > 0 else (champion, CHAMPION)
        ops = _set_env_ops(isvc, URI_ENV, version_uri(pinned_model(isvc)[0], serve))
        ops += _set_env_ops(isvc, ROLE_ENV, role)
        annotations = isvc["metadata"].get("annotations") or {}
        if not annotations:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        for key, value in ((CHAMPION_ANNOTATION, champion), (CHALLENGER_ANNOTATION, challenger)):
            if annotations.get(key) != str(value):
                ops.append(
                    {"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": str(value)}
                )
        current = isvc["spec"]["predictor"].get("canaryTrafficPercent")
        if weight > 0 and current != weight:
            ops.append({"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": weight})
        elif weight == 0 and current is not None:
            ops.append({"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"})
        if not ops:
            return []
        self.objects.patch(KSERVE, self.name, ops)
        return [f"{self.name} serves v{serve} ({role}), canaryTrafficPercent {weight or 'unset'}"]


def strategy_for(objects: Objects, name: str) -> Strategy:
    """Read the release's live objects once and pick the strategy their shape calls for."""
    champion = objects.get(KSERVE, f"{name}-champion")
    if champion is not None:
        challenger = objects.get(KSERVE, f"{name}-challenger")
        if challenger is None:
            raise NotFoundError(f"InferenceService {name}-challenger not found in {objects.namespace}")
        route = objects.get(GATEWAY, name)
        if route is None:
            raise NotFoundError(f"HTTPRoute {name} not found in {objects.namespace}")
        return StandardStrategy(objects, name, champion, challenger, route)
    single = objects.get(KSERVE, name)
    if single is None:
        raise NotFoundError(
            f"no InferenceService {name}-champion or {name} in namespace {objects.namespace} "
            "(--name is the release's full name, as printed by helm install)"
        )
    return KnativeStrategy(objects, name, single)
