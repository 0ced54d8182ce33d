"""The Kubernetes API as the canary uses it: read and JSON-patch custom objects in one namespace,
and wait for an InferenceService to be Ready; every failure is one readable error."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fraudcore.errors import FraudError, UnavailableError
from jobs.canary.state import KSERVE, CanaryError, not_ready

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

Kind = tuple[str, str, str]
JSON_PATCH = "application/json-patch+json"


class Objects:
    """Custom objects of one namespace."""

    def __init__(self, api: CustomObjectsApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = kind
        try:
            return self.api.get_namespaced_custom_object(group, version, self.namespace, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise self._api_error(e, f"read {plural}/{name}") from e

    def patch(self, kind: Kind, name: str, ops: list[dict[str, Any]]) -> None:
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

    def wait_ready(self, isvc_name: str, timeout: float = 600, poll: float = 2.0) -> None:
        """Wait until KServe reports the InferenceService Ready for its latest generation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            isvc = self.get(KSERVE, isvc_name) or {}
            observed = (isvc.get("status") or {}).get("observedGeneration")
            current = observed is None or observed >= isvc.get("metadata", {}).get("generation", 0)
            if current and not_ready(isvc) is None:
                return
            time.sleep(poll)
        raise UnavailableError(f"InferenceService {isvc_name} not Ready after {timeout:.0f}s")
