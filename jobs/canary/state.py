"""Reading the live canary state from the objects the Helm chart renders.

Standard (RawDeployment) mode: InferenceServices `<name>-champion` and `<name>-challenger`, each
pinned to a registry version by `FRAUD_MODEL_URI`, and HTTPRoute `<name>` whose backendRefs carry
the weights and whose optional `RequestMirror` filter copies a share of the requests to the
challenger (shadow traffic). Knative mode: one InferenceService `<name>` whose newest revision gets
`canaryTrafficPercent`; the versions of both roles are kept in its annotations.
"""

from dataclasses import dataclass
from typing import Any, Literal

from fraudcore.errors import FraudError, UsageError
from fraudcore.names import CHALLENGER_ANNOTATION, CHAMPION_ANNOTATION, MODEL_URI, URI_ENV

Mode = Literal["Standard", "Knative"]
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
MIRROR = "RequestMirror"


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
    """Versions, traffic split and shadow share as they are live in the cluster."""

    mode: Mode
    champion_version: int
    challenger_version: int
    challenger_weight: int
    shadow_percent: int = 0
    """Share of all requests also copied to the challenger, whose answers nobody sees (Knative: 0)."""

    @property
    def champion_weight(self) -> int:
        return 100 - self.challenger_weight


def not_ready(isvc: dict[str, Any]) -> str | None:
    """Why KServe does not report an InferenceService Ready (its condition's message), or None.

    A rolling update keeps it Ready: the old pods serve until the new ones are."""
    for condition in (isvc.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return None
            return condition.get("message") or condition.get("reason") or "Ready is False"
    return "KServe reports no Ready condition yet"


def env_list(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    """The predictor container's environment."""
    try:
        return isvc["spec"]["predictor"]["containers"][0].get("env", [])
    except (KeyError, IndexError) as e:
        name = isvc["metadata"]["name"]
        raise CanaryError(f"InferenceService {name} has no predictor container") from e


def env_index(isvc: dict[str, Any], var: str) -> int:
    for i, item in enumerate(env_list(isvc)):
        if item.get("name") == var:
            return i
    raise CanaryError(f"InferenceService {isvc['metadata']['name']} does not set {var}")


def pinned_model(isvc: dict[str, Any]) -> tuple[str, int]:
    """The registered model's name and the version an InferenceService serves."""
    uri = env_list(isvc)[env_index(isvc, URI_ENV)].get("value", "")
    match = MODEL_URI.match(uri)
    if not match or match["version"] is None:
        raise CanaryError(
            f"InferenceService {isvc['metadata']['name']}: {URI_ENV}={uri!r} is not pinned to a "
            "registry version (models:/<name>/<version>)"
        )
    return match["name"], int(match["version"])


def predictor_service(isvc_name: str) -> str:
    """The Service KServe creates for an InferenceService's predictor (Standard mode)."""
    return f"{isvc_name}-predictor"


def shadow_service(isvc_name: str) -> str:
    """The chart's Service the route mirrors to: it reaches the predictor's shadow port, where
    requests are recorded as mirrored copies (role `shadow`)."""
    return f"{isvc_name}-shadow"


def backend_indexes(
    route: dict[str, Any], champion: str, challenger: str
) -> tuple[int, int, list[dict[str, Any]]]:
    """Positions of the champion's and challenger's predictor Services in the route's backendRefs."""
    name = route["metadata"]["name"]
    try:
        refs = route["spec"]["rules"][0]["backendRefs"]
    except (KeyError, IndexError) as e:
        raise CanaryError(f"HTTPRoute {name} has no backendRefs") from e
    names = [r.get("name") for r in refs]
    wanted = (predictor_service(champion), predictor_service(challenger))
    missing = [w for w in wanted if w not in names]
    if missing:
        raise CanaryError(f"HTTPRoute {name} does not route to {', '.join(missing)}")
    return names.index(wanted[0]), names.index(wanted[1]), refs


def mirror_index(route: dict[str, Any], service: str) -> int | None:
    """Position of the route's rule-0 `RequestMirror` filter copying requests to `service`, or None."""
    for i, item in enumerate(route["spec"]["rules"][0].get("filters") or []):
        if (
            item.get("type") == MIRROR
            and item.get("requestMirror", {}).get("backendRef", {}).get("name") == service
        ):
            return i
    return None


def shadow_share(route: dict[str, Any], service: str) -> int:
    """Percent of the requests rule 0 mirrors to `service` (0 without such a filter): the filter's
    `percent`, or its `fraction`, or 100 when it names neither (Gateway API's default)."""
    i = mirror_index(route, service)
    if i is None:
        return 0
    mirror = route["spec"]["rules"][0]["filters"][i]["requestMirror"]
    if "percent" in mirror:
        return int(mirror["percent"])
    if fraction := mirror.get("fraction"):
        return round(100 * fraction["numerator"] / fraction.get("denominator", 100))
    return 100


def standard_state(
    champion: dict[str, Any], challenger: dict[str, Any], route: dict[str, Any]
) -> CanaryState:
    """Standard mode: each role's pinned version, the challenger's weight and shadow share on the route."""
    name = challenger["metadata"]["name"]
    _, i_challenger, refs = backend_indexes(route, champion["metadata"]["name"], name)
    return CanaryState(
        mode="Standard",
        champion_version=pinned_model(champion)[1],
        challenger_version=pinned_model(challenger)[1],
        challenger_weight=int(refs[i_challenger].get("weight", 1)),
        shadow_percent=shadow_share(route, shadow_service(name)),
    )


def knative_state(isvc: dict[str, Any]) -> CanaryState:
    """Knative mode: the versions from the annotations (default: the one served), the canary share."""
    annotations = isvc["metadata"].get("annotations") or {}
    served = pinned_model(isvc)[1]
    weight = int(isvc["spec"]["predictor"].get("canaryTrafficPercent") or 0)
    champion = int(annotations.get(CHAMPION_ANNOTATION) or served)
    challenger = int(annotations.get(CHALLENGER_ANNOTATION) or served)
    return CanaryState("Knative", champion, challenger, weight)
