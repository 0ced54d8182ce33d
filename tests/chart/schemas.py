"""Offline schema validation of rendered objects.

Built-in kinds are checked against the OpenAPI v3 spec published in the k8s.io/kubernetes module
(api/openapi-spec/v3), custom resources against the `openAPIV3Schema` of their CRDs. Like
`kubeconform -strict`, objects may not carry fields their schema does not declare (unless the
schema preserves unknown fields). The real kube-apiserver tests then re-check everything with
fieldValidation=Strict, CEL rules and admission.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import jsonschema

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _strict(node: object) -> object:
    """Forbid undeclared properties wherever a schema lists properties."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


class SchemaIndex:
    """Finds the schema for an apiVersion/kind and validates objects against it."""

    def __init__(self, openapi_dir: Path, crds: list[dict]) -> None:
        self._openapi_dir = openapi_dir
        self._crds: dict[tuple[str, str], dict] = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                self._crds[key] = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))

    @cache  # noqa: B019 - one index per test session
    def _openapi(self, api_version: str) -> dict:
        group, _, version = api_version.rpartition("/")
        name = f"apis__{group}__{version}_openapi.json" if group else f"api__{version}_openapi.json"
        path = self._openapi_dir / name
        if not path.exists():
            raise LookupError(f"no OpenAPI document for {api_version} ({name})")
        return _strict(json.loads(path.read_text()))

    def _builtin_validator(self, api_version: str, kind: str) -> jsonschema.Validator:
        doc = self._openapi(api_version)
        group, _, version = api_version.rpartition("/")
        for name, schema in doc["components"]["schemas"].items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                    root = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
                    return jsonschema.Draft202012Validator(root)
        raise LookupError(f"{api_version} {kind} is not in the Kubernetes OpenAPI spec")

    @cache  # noqa: B019
    def validator(
        self, api_version: str, kind: str
    ) -> tuple[jsonschema.Validator, jsonschema.Validator | None]:
        """Validator for the object, plus one for its metadata when the schema leaves it open."""
        if (api_version, kind) in self._crds:
            meta_doc = self._openapi("v1")
            meta = {"$ref": f"#/components/schemas/{OBJECT_META}", "components": meta_doc["components"]}
            return (
                jsonschema.Draft202012Validator(self._crds[(api_version, kind)]),
                jsonschema.Draft202012Validator(meta),
            )
        return self._builtin_validator(api_version, kind), None

    def errors(self, obj: dict) -> list[str]:
        """Every schema violation of `obj`, as `Kind/name: path: message` lines."""
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            validator, meta_validator = self.validator(obj["apiVersion"], obj["kind"])
        except LookupError as e:
            return [f"{where}: {e}"]
        found = [
            f"{where}: {'/'.join(map(str, err.absolute_path)) or '.'}: {err.message}"
            for err in validator.iter_errors(obj)
        ]
        if meta_validator is not None:
            found += [
                f"{where}: metadata/{'/'.join(map(str, err.absolute_path))}: {err.message}"
                for err in meta_validator.iter_errors(obj.get("metadata", {}))
            ]
        return found
