"""Pod specs inside rendered objects, as the kubelet would eventually run them."""

from __future__ import annotations

from collections.abc import Iterator

# PodSpec fields KServe copies from an InferenceService component into its pods.
_POD_FIELDS = {
    "containers",
    "initContainers",
    "volumes",
    "securityContext",
    "serviceAccountName",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "runtimeClassName",
    "topologySpreadConstraints",
    "dnsPolicy",
    "enableServiceLinks",
    "terminationGracePeriodSeconds",
}


def pod_templates(obj: dict) -> Iterator[tuple[str, dict, dict]]:
    """Yield (where, labels, pod spec) for every pod the object makes."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec = obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        tmpl = spec["template"]
        pod = dict(tmpl["spec"])
        # The StatefulSet controller adds one volume per claim template.
        claims = [c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])]
        pod["volumes"] = pod.get("volumes", []) + [
            {"name": c, "persistentVolumeClaim": {"claimName": f"{c}-{name}-0"}} for c in claims
        ]
        yield f"{kind}/{name}", tmpl.get("metadata", {}).get("labels", {}), pod
    elif kind == "CronJob":
        tmpl = spec["jobTemplate"]["spec"]["template"]
        yield f"{kind}/{name}", tmpl.get("metadata", {}).get("labels", {}), tmpl["spec"]
    elif kind == "Pod":
        yield f"Pod/{name}", obj["metadata"].get("labels", {}), spec
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                comp = spec[component]
                pod = {k: v for k, v in comp.items() if k in _POD_FIELDS}
                yield f"{kind}/{name}/{component}", comp.get("labels", {}), pod


def as_pod(name: str, labels: dict, spec: dict) -> dict:
    """A bare Pod with the given spec (for admission checks)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def long_running(obj: dict) -> bool:
    return obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}
