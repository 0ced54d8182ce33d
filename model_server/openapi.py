"""The predictor's OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`).

FastAPI describes only the KServe routes it routes itself. The scoring endpoints are an ASGI
middleware and metadata, readiness and a few KServe routes are replaced (routes.py), so those are
described here, from the same constants the codec checks against and the loaded model's schema: the
document says what the server answers, including the `{"error": …}` body of every 4xx and 5xx.
"""

import re
from importlib import metadata
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse

from fraudcore.reasons import DEFAULT_TOP_K, TOP_K_PARAMETER
from fraudcore.schema import Schema
from model_server import codec
from model_server.tensors import DATATYPES

TITLE = "fraud-detection predictor"
KEPT_FROM_KSERVE = ("/", "/metrics", "/v1/models", "/v2/models", "/v2/health/live")
"""KServe routes answered by KServe itself; every other path in the document is described here."""

_REF = re.compile(r'"#/components/schemas/([^"]+)"')
_NAME = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {
    "name": "model_version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The loaded version (the one metadata lists); any other is 404.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **extra}


ERRORS = {
    400: "Malformed request: the message names the problem",
    401: "Missing or wrong bearer token (only when FRAUD_API_TOKEN is set)",
    403: "Not allowed on this server",
    404: "No such model, or no such version of it",
    413: "More rows (or body bytes) than FRAUD_MAX_BATCH_ROWS allows",
    500: 'Unexpected server error: always `{"error": "internal error"}`',
    503: "The model is not loaded (yet, or it failed to load)",
}
_SCORED_HEADERS = {
    "x-model-version": {
        "description": "Registry version that scored the request",
        "schema": {"type": "string"},
    },
    "x-model-role": {"description": "champion or challenger", "schema": {"type": "string"}},
}


def _responses(ok: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    answers = {str(code): _body(_ref("Error"), ERRORS[code]) for code in errors}
    return {"200": ok, **answers} if ok else answers


def _operation(method: str, summary: str, ok: dict[str, Any] | None, *errors: int, **extra: Any) -> dict:
    tag = "v1" if "v1" in summary else "v2"
    return {method: {"summary": summary, "tags": [tag], "responses": _responses(ok, *errors), **extra}}


def _infer() -> dict[str, Any]:
    ok = _body(_ref("InferenceResponse"), "Scores and decisions", headers=_SCORED_HEADERS)
    body = {"required": True, "content": {"application/json": {"schema": _ref("InferenceRequest")}}}
    return _operation("post", "Inference (v2)", ok, 400, 401, 404, 413, 500, 503, requestBody=body)


def _paths() -> dict[str, Any]:
    """Every path the predictor answers itself, with its parameters."""
    model = "/v2/models/{model_name}"
    version = model + "/versions/{model_version}"
    metadata_ok = _body(_ref("ModelMetadataResponse"), "Model metadata")
    ready_ok = _body(_ref("ReadyResponse"), "Ready")
    v1_body = {"required": True, "content": {"application/json": {"schema": _ref("V1Request")}}}
    v1_ok = _body(_ref("V1Response"), "Scores and decisions", headers=_SCORED_HEADERS)
    explain_body = {"required": True, "content": {"application/json": {"schema": _ref("V1ExplainRequest")}}}
    explain_ok = _body(
        _ref("V1ExplainResponse"), "Scores, decisions and reason codes", headers=_SCORED_HEADERS
    )
    server_ok = _body(_ref("ServerMetadataResponse"), "Server metadata")
    paths: dict[str, Any] = {
        "/v2": _operation("get", "Server metadata (v2)", server_ok),
        "/v2/": _operation("get", "Server metadata (v2)", server_ok),
        "/v2/health/ready": _operation("get", "Server ready (v2)", ready_ok, 503),
        model: _operation("get", "Model metadata (v2)", metadata_ok, 401, 404, 503),
        version: _operation("get", "Model version metadata (v2)", metadata_ok, 401, 404, 503),
        model + "/ready": _operation("get", "Model ready (v2)", ready_ok, 401, 404, 503),
        version + "/ready": _operation("get", "Model version ready (v2)", ready_ok, 401, 404, 503),
        model + "/infer": _infer(),
        version + "/infer": _infer(),
        "/v1/models/{model_name}": _operation("get", "Model ready (v1)", ready_ok, 401, 404, 503),
        "/v1/models/{model_name}:predict": _operation(
            "post", "Predict (v1)", v1_ok, 400, 401, 404, 413, 500, 503, requestBody=v1_body
        ),
        "/v1/models/{model_name}:explain": _operation(
            "post",
            "Explain (v1): reason codes",
            explain_ok,
            400,
            401,
            404,
            413,
            500,
            503,
            requestBody=explain_body,
        ),
        "/v2/repository/models/{model_name}/load": _operation("post", "Load (v2 repository)", None, 401, 403),
        "/v2/repository/models/{model_name}/unload": _operation(
            "post", "Unload (v2 repository)", None, 401, 403
        ),
    }
    for path, item in paths.items():
        params = [_NAME, _VERSION] if "{model_version}" in path else [_NAME] if "{model_name}" in path else []
        if params:
            item["parameters"] = params
    return paths


def _object(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A JSON object schema with its required keys."""
    return {"type": "object", "required": required, **extra, "properties": properties}


_PARAMETERS = {
    "type": ["object", "null"],
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "description": "Name/value pairs. `binary_data_output` (request), `binary_data` (output) and "
    "`binary_data_size` (input) are the binary tensor extension's. `top_k` (request): reason codes per "
    f"row when `reason_codes` is requested, 1 to the model's feature count (default {DEFAULT_TOP_K}).",
}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _tensor_schemas(decoder: codec.Decoder | None) -> dict[str, Any]:
    """The v2 request and response bodies, as codec.py reads and writes them."""
    return {"InferenceRequest": _inference_request(decoder), "InferenceResponse": _inference_response()}


def _inference_request(decoder: codec.Decoder | None) -> dict[str, Any]:
    value = {"type": ["number", "string", "boolean", "null"]}
    data = {"type": "array", "items": {"anyOf": [value, {"type": "array", "items": value}]}}
    matrix = decoder is None or decoder.schema.all_numeric
    shape = {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "minItems": 1,
        "maxItems": 2 if matrix else 1,
    }
    request_input = _object(
        ["name", "shape", "datatype"],
        {
            "name": {"type": "string"},
            "shape": shape,
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": _PARAMETERS,
            "data": data,
        },
        description=_inputs_description(decoder.schema if decoder else None),
    )
    inputs: dict[str, Any] = {"type": "array", "items": request_input, "minItems": 1}
    if decoder is not None:
        inputs["maxItems"] = decoder.max_inputs
    request_output = _object(
        ["name"], {"name": {"type": "string", "enum": list(codec.NAMEABLE)}, "parameters": _PARAMETERS}
    )
    return _object(
        ["inputs"],
        {
            "id": {"type": ["string", "null"], "description": "Echoed in the response"},
            "parameters": _PARAMETERS,
            "inputs": inputs,
            "outputs": {
                "type": ["array", "null"],
                "items": request_output,
                "maxItems": len(codec.NAMEABLE),
                "description": "Outputs to return, each at most once; absent or empty: fraud_probability "
                "and is_fraud. `reason_codes` adds `reason_codes` (BYTES [N, top_k]: the features pushing "
                "the score toward fraud the most, strongest first) and `reason_contributions` (FP32 "
                "[N, top_k]: their log-odds); they are computed only when requested.",
            },
        },
    )


def _inputs_description(schema: Schema | None) -> str:
    """Which tensors the loaded model takes (any model's rule when none is loaded)."""
    if schema is None:
        return (
            "One [N] tensor per feature, named by feature: numbers for a numeric feature, BOOL for a "
            "boolean one, BYTES for a categorical one; for an all-numeric model also one [N, k] tensor "
            "in schema order. Model metadata lists the inputs."
        )
    described = ", ".join(
        f"{f.name} ({codec.DATATYPE_OF_KIND[f.kind]}{', optional' if f.optional else ''})"
        for f in schema.features
    )
    text = f"One [N] tensor per feature, named by feature: {described}."
    if schema.all_numeric:
        text += f" Or one [N, {len(schema)}] tensor with the features in this order."
    return text


def _inference_response() -> dict[str, Any]:
    response_output = _object(
        ["name", "shape", "datatype"],
        {
            "name": {
                "type": "string",
                "enum": [*codec.OUTPUTS, codec.REASON_CODES, codec.REASON_CONTRIBUTIONS],
            },
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": ["FP32", "BOOL", "BYTES"]},
            "parameters": _PARAMETERS,
            "data": {"type": "array", "items": {"type": ["number", "boolean", "string"]}},
        },
    )
    return _object(
        ["model_name", "model_version", "id", "outputs"],
        {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string", "description": "The request's id, else its x-request-id"},
            "outputs": {"type": "array", "items": response_output},
        },
    )


def _other_schemas(schema: Schema | None) -> dict[str, Any]:
    """Errors, health and metadata, and the v1 bodies."""
    return {**_status_schemas(), **_v1_schemas(schema)}


def _status_schemas() -> dict[str, Any]:
    tensor = _object(
        ["name", "datatype", "shape"],
        {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    )
    return {
        "Error": _object(["error"], {"error": {"type": "string"}}),
        "ReadyResponse": _object(
            ["name", "ready"],
            {"name": {"type": "string"}, "ready": {"type": "boolean"}, "error": {"type": "string"}},
        ),
        "ServerMetadataResponse": _object(
            ["name", "version", "extensions"],
            {"name": {"type": "string"}, "version": {"type": "string"}, "extensions": _STRINGS},
        ),
        "ModelMetadataResponse": _object(
            ["name", "versions", "platform", "inputs", "outputs"],
            {
                "name": {"type": "string"},
                "versions": _STRINGS,
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": tensor},
                "outputs": {"type": "array", "items": tensor},
                "parameters": {
                    "type": "object",
                    "description": "Version, role, threshold, holdout metrics, schema",
                },
            },
        ),
    }


_V1_TYPES: dict[str, str] = {"numeric": "number", "categorical": "string", "boolean": "boolean"}


def _v1_instance(schema: Schema | None) -> dict[str, Any]:
    """An instance: an object keyed by feature (null or absent: missing, for optional features) or,
    for an all-numeric model, a list of its values in schema order."""
    if schema is None:
        value = {"type": ["number", "string", "boolean", "null"]}
        return {
            "anyOf": [{"type": "object", "additionalProperties": value}, {"type": "array", "items": value}]
        }
    properties = {
        f.name: {"type": [_V1_TYPES[f.kind], "null"] if f.optional else _V1_TYPES[f.kind]}
        for f in schema.features
    }
    keyed = _object([f.name for f in schema.features if not f.optional], properties)
    if not schema.all_numeric:
        return keyed
    k = len(schema)
    return {"anyOf": [keyed, {"type": "array", "items": {"type": "number"}, "minItems": k, "maxItems": k}]}


def _v1_schemas(schema: Schema | None) -> dict[str, Any]:
    prediction = _object(
        [codec.PROBABILITY, codec.DECISION],
        {codec.PROBABILITY: {"type": "number"}, codec.DECISION: {"type": "boolean"}},
    )
    instances = {"type": "array", "items": _v1_instance(schema), "minItems": 1}
    predictions = {"type": "array", "items": prediction}
    reason = _object(
        ["feature", "contribution"],
        {"feature": {"type": "string"}, "contribution": {"type": "number", "description": "log-odds"}},
    )
    top_k = {"type": "integer", "minimum": 1, "default": DEFAULT_TOP_K}
    if schema is not None:
        top_k["maximum"] = len(schema)
    return {
        "V1Request": _object(["instances"], {"instances": instances}),
        "V1Response": _object(
            ["predictions", "model_version"],
            {"predictions": predictions, "model_version": {"type": "string"}},
        ),
        "V1ExplainRequest": _object(
            ["instances"],
            {"instances": instances, "parameters": _object([], {TOP_K_PARAMETER: top_k})},
        ),
        "V1ExplainResponse": _object(
            ["predictions", "explanations", "model_version"],
            {
                "predictions": predictions,
                "explanations": {
                    "type": "array",
                    "items": {"type": "array", "items": reason},
                    "description": "Per instance, its top_k reasons: the features pushing its score "
                    "toward fraud the most, strongest first, with their log-odds",
                },
                "model_version": {"type": "string"},
            },
        ),
    }


def document(app: FastAPI, decoder: codec.Decoder | None) -> dict[str, Any]:
    """KServe's routes that are KServe's own, as FastAPI describes them, plus everything above, with
    the inputs of the loaded model (`decoder`), or of any model when none is loaded."""
    generated = get_openapi(title=TITLE, version=metadata.version("kserve"), routes=app.routes)
    kept = {path: item for path, item in generated["paths"].items() if path in KEPT_FROM_KSERVE}
    kept["/metrics"]["get"]["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    used = set(_REF.findall(orjson.dumps(kept).decode()))
    schema = decoder.schema if decoder else None
    generated_schemas = generated.get("components", {}).get("schemas", {})
    schemas = {name: generated_schemas[name] for name in used}
    return {
        "openapi": generated["openapi"],
        "info": {
            "title": TITLE,
            "version": metadata.version("kserve"),
            "description": "Open Inference Protocol (v2) and KServe v1 REST. Every error is "
            '`{"error": "…"}`. With FRAUD_API_TOKEN set, /v1/models and /v2/models paths need '
            "`Authorization: Bearer <token>`.",
        },
        "paths": {**kept, **_paths()},
        "components": {"schemas": {**schemas, **_tensor_schemas(decoder), **_other_schemas(schema)}},
    }


def install(app: FastAPI, decoder: codec.Decoder | None) -> None:
    """Serve this document at the app's `openapi_url`, and Swagger UI at `/docs`; `decoder` reads
    the loaded model's requests (None: no model could be loaded)."""
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cached:  # first asked after KServe has added its routes
            cached.update(document(app, decoder))
        return cached

    app.openapi = openapi  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    async def docs(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{TITLE} - Swagger UI")

    if app.docs_url is None:  # KServe adds its own only with --enable_docs_url
        app.add_route("/docs", docs, methods=["GET"], include_in_schema=False)
