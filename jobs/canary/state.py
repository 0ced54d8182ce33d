"""Champion/challenger canary on Kubernetes: read and patch the objects the Helm chart renders.

Standard (RawDeployment) mode: InferenceServices `<name>-champion` and `<name>-challenger`, each
pinned to a registry version by `FRAUD_MODEL_URI`, and HTTPRoute `<name>` whose backendRefs carry
the weights. Knative mode: one InferenceService `<name>` whose newest revision gets
`canaryTrafficPercent`; the versions of both roles are kept in its annotations.

Every operation reads the live objects, computes the target state and patches only what differs
(JSON patches guarded by `test` ops), so repeating a command is a no-op.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fraudcore.errors import FraudError, InvalidInputError, NotFoundError, UnavailableError, UsageError

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
URI_ENV, ROLE_ENV = "FRAUD_MODEL_URI", "FRAUD_MODEL_ROLE"
CHAMPION_ANNOTATION = "fraud-detection.io/champion-version"
CHALLENGER_ANNOTATION = "fraud-detection.io/challenger-version"
JSON_PATCH = "application/json-patch+json"
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")

Mode = Literal["Standard", "Knative"]


class CanaryError(FraudError):
    """The cluster objects are not in a shape the canary tooling can work with."""

    status_code = 409


def parse_percent(text: str) -> int:
    """A traffic share for the challenger: a whole number from 0 to 100."""
    value = text.strip().removesuffix("%")
    if not value.isdigit() or int(value) > 100:
        raise UsageError(f"percentage must be a whole number from 0 to 100, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class CanaryState:
    """Versions and traffic split as they are live in the cluster."""

    mode: Mode
    champion_version: int
    challenger_version: int
    challenger_weight: int

    @property
    def champion_weight(self) -> int:
        return 100 - self.challenger_weight


@dataclass(frozen=True)
class Outcome:
    """What a command did: the state afterwards and the changes made (empty: nothing to do)."""

    state: CanaryState
    changes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Registry(Protocol):
    """Where aliases and verdicts follow the cluster (MLflow in production)."""

    def promoted(self, version: int) -> None: ...

    def rejected(self, version: int, reason: str) -> None: ...


def _env(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return isvc["spec"]["predictor"]["containers"][0].get("env", [])
    except (KeyError, IndexError) as e:
        name = isvc["metadata"]["name"]
        raise CanaryError(f"InferenceService {name} has no predictor container") from e


def _env_index(isvc: dict[str, Any], var: str) -> int:
    for i, item in enumerate(_env(isvc)):
        if item.get("name") == var:
            return i
    raise CanaryError(f"InferenceService {isvc['metadata']['name']} does not set {var}")


def _version_of(isvc: dict[str, Any]) -> int:
    uri = _env(isvc)[_env_index(isvc, URI_ENV)].get("value", "")
    match = _VERSION.match(uri)
    if not match:
        raise CanaryError(
            f"InferenceService {isvc['metadata']['name']}: {URI_ENV}={uri!r} is not pinned to a "
            "registry version (models:/<name>/<version>)"
        )
    return int(match["version"])


def _model_name_of(isvc: dict[str, Any]) -> str:
    uri = _env(isvc)[_env_index(isvc, URI_ENV)].get("value", "")
    match = _VERSION.match(uri)
    return match["name"] if match else "fraud-detector"


def _set_env_ops(isvc: dict[str, Any], var: str, value: str) -> list[dict[str, Any]]:
    """JSON patch ops setting an env var, guarded by a test of its name; none when already set."""
    i = _env_index(isvc, var)
    if _env(isvc)[i].get("value") == value:
        return []
    path = f"/spec/predictor/containers/0/env/{i}"
    return [
        {"op": "test", "path": f"{path}/name", "value": var},
        {"op": "replace", "path": f"{path}/value", "value": value},
    ]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class Canary:
    """The canary of one release (`name` = the chart's full name) in one namespace."""

    def __init__(self, api: CustomObjectsApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.champion = f"{name}-champion"
        self.challenger = f"{name}-challenger"

    # -- reading -----------------------------------------------------------------------------

    def _get(self, kind: tuple[str, str, str], name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = kind
        try:
            return self.api.get_namespaced_custom_object(group, version, self.namespace, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise self._api_error(e, f"read {plural}/{name}") from e

    def _patch(self, kind: tuple[str, str, str], name: str, ops: list[dict[str, Any]]) -> None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = kind
        try:
            self.api.patch_namespaced_custom_object(
                group, version, self.namespace, plural, name, ops, _content_type=JSON_PATCH
            )
        except ApiException as e:
            raise self._api_error(e, f"patch {plural}/{name}") from e

    def _api_error(self, e: ApiException, what: str) -> FraudError:
        """One readable error per failed API call (the client's own is a multi-line dump)."""
        if e.status in (401, 403):
            return CanaryError(f"not allowed to {what} in namespace {self.namespace} ({e.reason})")
        if e.status == 422 or e.status == 409:
            return CanaryError(f"cannot {what}: the object changed meanwhile or is invalid ({e.reason})")
        return UnavailableError(f"cannot {what}: Kubernetes API answered {e.status} {e.reason}")

    def _objects(self) -> tuple[Mode, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
        """(mode, champion-or-single ISVC, challenger ISVC, route)."""
        champion = self._get(KSERVE, self.champion)
        if champion is not None:
            challenger = self._get(KSERVE, self.challenger)
            if challenger is None:
                raise NotFoundError(f"InferenceService {self.challenger} not found in {self.namespace}")
            route = self._get(GATEWAY, self.name)
            if route is None:
                raise NotFoundError(f"HTTPRoute {self.name} not found in {self.namespace}")
            return "Standard", champion, challenger, route
        single = self._get(KSERVE, self.name)
        if single is None:
            raise NotFoundError(
                f"no InferenceService {self.champion} or {self.name} in namespace {self.namespace} "
                "(--name is the release's full name, as printed by helm install)"
            )
        return "Knative", single, None, None

    def _backend_indexes(self, route: dict[str, Any]) -> tuple[int, int, list[dict[str, Any]]]:
        try:
            refs = route["spec"]["rules"][0]["backendRefs"]
        except (KeyError, IndexError) as e:
            raise CanaryError(f"HTTPRoute {self.name} has no backendRefs") from e
        names = [r.get("name") for r in refs]
        wanted = (f"{self.champion}-predictor", f"{self.challenger}-predictor")
        missing = [w for w in wanted if w not in names]
        if missing:
            raise CanaryError(f"HTTPRoute {self.name} does not route to {', '.join(missing)}")
        return names.index(wanted[0]), names.index(wanted[1]), refs

    def status(self) -> CanaryState:
        mode, main, challenger, route = self._objects()
        if mode == "Knative":
            return self._knative_state(main)
        assert challenger is not None
        assert route is not None
        _, i_challenger, refs = self._backend_indexes(route)
        return CanaryState(
            mode="Standard",
            champion_version=_version_of(main),
            challenger_version=_version_of(challenger),
            challenger_weight=int(refs[i_challenger].get("weight", 1)),
        )

    @staticmethod
    def _knative_state(isvc: dict[str, Any]) -> CanaryState:
        annotations = isvc["metadata"].get("annotations") or {}
        served = _version_of(isvc)
        weight = int(isvc["spec"]["predictor"].get("canaryTrafficPercent") or 0)
        champion = int(annotations.get(CHAMPION_ANNOTATION) or served)
        challenger = int(annotations.get(CHALLENGER_ANNOTATION) or served)
        return CanaryState("Knative", champion, challenger, weight)

    # -- writing -----------------------------------------------------------------------------

    def _set_weights(self, route: dict[str, Any], challenger_weight: int) -> list[str]:
        i_champion, i_challenger, refs = self._backend_indexes(route)
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
        if not ops:
            return []
        self._patch(GATEWAY, self.name, ops)
        return [f"weights {100 - challenger_weight}/{challenger_weight}"]

    def _set_version(self, isvc: dict[str, Any], version: int) -> list[str]:
        uri = f"models:/{_model_name_of(isvc)}/{version}"
        ops = _set_env_ops(isvc, URI_ENV, uri)
        if not ops:
            return []
        self._patch(KSERVE, isvc["metadata"]["name"], ops)
        return [f"{isvc['metadata']['name']} → {uri}"]

    def _knative_apply(
        self, isvc: dict[str, Any], *, champion: int, challenger: int, weight: int
    ) -> list[str]:
        """Bring the single InferenceService to: serve `challenger` at `weight` % (or only the
        champion when weight is 0), with both versions recorded in its annotations."""
        serve, role = (challenger, "challenger") if weight > 0 else (champion, "champion")
        ops = _set_env_ops(isvc, URI_ENV, f"models:/{_model_name_of(isvc)}/{serve}")
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
        self._patch(KSERVE, self.name, ops)
        return [f"{self.name} serves v{serve} ({role}), canaryTrafficPercent {weight or 'unset'}"]

    def set_weight(self, percent: int, challenger_version: int | None = None) -> Outcome:
        """Send `percent` % of traffic to the challenger, optionally pointing it at a version first."""
        if not 0 <= percent <= 100:
            raise InvalidInputError(f"percentage must be a whole number from 0 to 100, got {percent}")
        mode, main, challenger, route = self._objects()
        if mode == "Knative":
            state = self._knative_state(main)
            target = challenger_version or state.challenger_version
            changes = self._knative_apply(
                main, champion=state.champion_version, challenger=target, weight=percent
            )
            return Outcome(self.status(), tuple(changes))
        assert challenger is not None
        assert route is not None
        changes = self._set_version(challenger, challenger_version) if challenger_version else []
        changes += self._set_weights(route, percent)
        return Outcome(self.status(), tuple(changes))

    def promote(
        self,
        registry: Registry | None = None,
        wait_ready: Callable[[str], None] | None = None,
    ) -> Outcome:
        """The champion takes the challenger's version (rolling update), then weights go to 100/0
        and the registry's aliases follow."""
        mode, main, challenger, route = self._objects()
        if mode == "Knative":
            state = self._knative_state(main)
            version = state.challenger_version
            changes = self._knative_apply(main, champion=version, challenger=version, weight=0)
            if changes and wait_ready:
                wait_ready(self.name)
        else:
            assert challenger is not None
            assert route is not None
            version = _version_of(challenger)
            changes = self._set_version(main, version)
            if changes and wait_ready:
                wait_ready(self.champion)
            changes += self._set_weights(route, 0)
        if registry is not None:
            registry.promoted(version)
        return Outcome(self.status(), tuple(changes))

    def rollback(self, registry: Registry | None = None, reason: str = "canary rollback") -> Outcome:
        """All traffic back to the champion at once; the challenger's version is marked rejected."""
        mode, main, _, route = self._objects()
        state = self.status()
        if mode == "Knative":
            changes = self._knative_apply(
                main, champion=state.champion_version, challenger=state.challenger_version, weight=0
            )
        else:
            assert route is not None
            changes = self._set_weights(route, 0)
        if registry is not None and state.challenger_version != state.champion_version:
            registry.rejected(state.challenger_version, reason)
        return Outcome(self.status(), tuple(changes))

    # -- waiting -----------------------------------------------------------------------------

    def wait_ready(self, isvc_name: str, timeout: float = 600, poll: float = 2.0) -> None:
        """Wait until KServe reports the InferenceService Ready for its latest generation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            isvc = self._get(KSERVE, isvc_name) or {}
            status = isvc.get("status") or {}
            observed = status.get("observedGeneration")
            current = observed is None or observed >= isvc.get("metadata", {}).get("generation", 0)
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if ready and current:
                return
            time.sleep(poll)
        raise UnavailableError(f"InferenceService {isvc_name} not Ready after {timeout:.0f}s")


class MlflowRegistry:
    """Aliases follow the cluster: `@champion` on promotion, `rejected` tag on rollback."""

    def __init__(self, client: Any, model_name: str) -> None:
        self.client = client
        self.model_name = model_name

    def promoted(self, version: int) -> None:
        from training.registry import set_champion

        set_champion(self.client, self.model_name, str(version))
        logger.info("%s version %s is @champion", self.model_name, version)

    def rejected(self, version: int, reason: str) -> None:
        from training.registry import mark_rejected

        mark_rejected(self.client, self.model_name, str(version), reason)
        logger.info("%s version %s tagged rejected", self.model_name, version)


# -- live numbers --------------------------------------------------------------------------------

LIVE_QUERIES = {
    "requests/s": "sum by (role) (rate(request_predict_seconds_count{{namespace={ns}}}[5m]))",
    "error ratio": (
        "sum by (role) (rate(fraud_rejected_requests_total{{namespace={ns}}}[5m])) / "
        "(sum by (role) (rate(fraud_rejected_requests_total{{namespace={ns}}}[5m])) + "
        "sum by (role) (rate(request_predict_seconds_count{{namespace={ns}}}[5m])))"
    ),
    "p99 latency s": (
        "histogram_quantile(0.99, sum by (role, le) "
        "(rate(request_predict_seconds_bucket{{namespace={ns}}}[5m])))"
    ),
    "fraud rate": (
        'sum by (role) (rate(fraud_predictions_total{{namespace={ns}, decision="fraud"}}[1h])) / '
        "sum by (role) (rate(fraud_predictions_total{{namespace={ns}}}[1h]))"
    ),
}


def live_numbers(prometheus_url: str, namespace: str, timeout: float = 3.0) -> dict[str, dict[str, float]]:
    """Per-role request rate, error ratio, p99 latency and fraud rate from Prometheus.

    Raises UnavailableError when Prometheus cannot be queried.
    """
    out: dict[str, dict[str, float]] = {}
    for label, template in LIVE_QUERIES.items():
        query = template.format(ns=json.dumps(namespace))
        url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = json.load(resp)
        except (urllib.error.URLError, TimeoutError, ValueError) as e:
            raise UnavailableError(f"Prometheus at {prometheus_url} not reachable ({e})") from e
        for sample in body.get("data", {}).get("result", []):
            role = sample["metric"].get("role", "?")
            out.setdefault(role, {})[label] = float(sample["value"][1])
    return out
