"""HTTP layer added to KServe's app: the scoring endpoints, model metadata, readiness, request ids, token.

The scoring endpoints (`POST /v2/models/{name}/infer`, `POST /v1/models/{name}:predict`, and
`:explain` through the model's explain hook) are answered by a plain ASGI middleware in front of
KServe's router: KServe's generic v2 route parses every number through pydantic, while codec.py
reads the same bodies with orjson and numpy. Everything else (health, metrics, repository, server
metadata) is KServe's own, with two routes replaced: model metadata (which adds version, role,
threshold and training metrics) and readiness (KServe reports the server ready even when no model
is loaded, and logs a traceback per not-ready probe).
"""

import hmac
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudcore.errors import FraudError
from fraudcore.names import SHADOW
from model_server import codec, openapi
from model_server.errors import (
    BatchTooLargeError,
    InternalError,
    NotReadyError,
    UnauthorizedError,
    brief,
    listing,
    message_of,
    reason_of,
)
from model_server.model import FraudPredictor

logger = logging.getLogger("model_server.requests")

REQUEST_ID_HEADER = b"x-request-id"
JSON_LENGTH_HEADER = b"inference-header-content-length"
PROTECTED_PREFIXES = ("/v1/models", "/v2/models", "/v2/repository")
"""Paths that need the shared token when one is set; health, metrics and server metadata do not."""

_V2_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_V1_PREDICT = re.compile(r"/v1/models/([^/]+):predict")
_V1_EXPLAIN = re.compile(r"/v1/models/([^/]+):explain")
_JSON = [(b"content-type", b"application/json")]
SERVER_METADATA = {
    "name": "kserve",
    "version": metadata.version("kserve"),
    "extensions": ["binary_tensor_data"],
}
"""`GET /v2`: KServe's name and version; the repository extension is not offered (see `Routes.repository`)."""

Headers = list[tuple[bytes, bytes]]
Scored = tuple[bytes, Headers, int]
"""A scoring endpoint's answer: body, headers and the number of rows scored."""
Handler = Callable[[codec.Decoder, bytes, bytes | None, str, float, bool], Awaitable[Scored]]
Route = tuple[Handler, str, str | None]
"""A scoring endpoint's handler, the model name in its URL and the version, when the URL names one."""


def install(app: FastAPI, model: FraudPredictor) -> None:
    """Add the routes, error handlers and the OpenAPI document; call before the server starts (KServe
    adds its routes after, so these answer first). `ScoringMiddleware` wraps the result."""
    routes = Routes(model)
    for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
        app.add_route(prefix, routes.metadata, methods=["GET"])
        app.add_route(prefix + "/ready", routes.model_ready, methods=["GET"])
    app.add_route("/v1/models/{model_name}", routes.model_ready, methods=["GET"])
    app.add_route("/v2/health/ready", routes.ready, methods=["GET"])
    app.add_route("/v2", routes.server_metadata, methods=["GET"])
    app.add_route("/v2/", routes.server_metadata, methods=["GET"])
    for action in ("load", "unload"):
        app.add_route(f"/v2/repository/models/{{model_name}}/{action}", routes.repository, methods=["POST"])
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    openapi.install(app, model.decoder if model.ready else None)


async def _http_error(request: Request, error: Exception) -> Response:
    """FastAPI's own 404/405 (and any HTTPException) as `{"error": …}`, keeping its headers (Allow)."""
    status = getattr(error, "status_code", 500)
    detail = f"{getattr(error, 'detail', 'error')}: {request.method} {brief(request.url.path)}"
    return _json(status, {"error": detail}, getattr(error, "headers", None))


async def _invalid_request(_: Request, error: Exception) -> Response:
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    listed = listing([f"{'.'.join(map(str, p.get('loc', ())))}: {p.get('msg')}" for p in problems])
    return _json(422, {"error": f"invalid request: {listed}"})


class ScoringMiddleware:
    """Request id on every response, the optional shared-token check, and the scoring endpoints.

    A request that arrives on the shadow port (`FRAUD_SHADOW_PORT`, where the route's mirror
    sends its copies) is scored as usual and recorded under the role `shadow` (audit rows, metric
    series, log line); its response headers still name the predictor's role (nobody reads a
    mirror's response). The port tells copies apart whatever the Gateway does to their headers
    (Envoy Gateway keeps the Host as it was).

    It is the outermost ASGI app (uvicorn calls it directly): a scoring request passes through
    nothing else, while every other request goes on to KServe's app and its middleware.
    """

    def __init__(self, app: ASGIApp, model: FraudPredictor, token: str | None) -> None:
        self.app = app
        self.model = model
        self.max_rows = model.settings.max_batch_rows
        self.expected = f"Bearer {token}".encode() if token else None
        self.shadow_port = model.settings.shadow_port
        self._headers: Headers = []
        self._headers_version: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = authorization = json_length = None
        length = 0
        server = scope.get("server")
        shadow = server is not None and server[1] == self.shadow_port
        for key, value in scope["headers"]:
            if key == REQUEST_ID_HEADER:
                request_id = value
            elif key == b"authorization":
                authorization = value
            elif key == JSON_LENGTH_HEADER:
                json_length = value
            elif key == b"content-length" and value.isdigit():
                length = int(value)
        if not request_id or len(request_id) > 200 or not request_id.isascii():
            request_id = b"%032x" % random.getrandbits(128)
        rid = request_id.decode()
        path: str = scope["path"]
        handler = self._handler(scope["method"], path)
        if self.expected and path.startswith(PROTECTED_PREFIXES):
            if authorization is None or not hmac.compare_digest(authorization, self.expected):
                error = UnauthorizedError("missing or wrong bearer token (Authorization: Bearer <token>)")
                status, body, headers = self._reject(error, scope, rid, started, shadow)
                headers.append((b"www-authenticate", b"Bearer"))
                await _respond(send, status, body, headers, request_id)
                return
        if handler is None:

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
                await send(message)

            await self.app(scope, receive, send_with_id)
            return
        score, name, version = handler
        try:
            self.model.check_served(name, version)
            decoder = self.model.decoder  # 503 while no model is loaded: nothing to read the body for
            if length > decoder.max_bytes:
                raise self._too_large(f"request body of {length} bytes")
            body = await self._read_body(receive, decoder.max_bytes)
            content, headers, rows = await score(decoder, body, json_length, rid, started, shadow)
        except FraudError as e:
            status, content, headers = self._reject(e, scope, rid, started, shadow)
        except Exception:  # a bug, not the caller's mistake: a fixed answer, the traceback in the log
            error = InternalError()
            status, content, headers = self._reject(error, scope, rid, started, shadow, failed=True)
        else:
            status = 200
            self._log(scope, status, rid, started, shadow, rows=rows)
        await _respond(send, status, content, headers, request_id)

    def _handler(self, method: str, path: str) -> Route | None:
        if method != "POST":
            return None
        if match := _V2_INFER.fullmatch(path):
            return self._infer_v2, match[1], match[2]
        if match := _V1_PREDICT.fullmatch(path):
            return self._predict_v1, match[1], None
        if match := _V1_EXPLAIN.fullmatch(path):
            return self._explain_v1, match[1], None
        return None

    async def _read_body(self, receive: Receive, max_bytes: int) -> bytes:
        """The whole body, refused (413) as soon as it grows past `max_bytes`, chunked or not."""
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        parts, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > max_bytes:
                raise self._too_large(f"request body of more than {max_bytes} bytes")
        return b"".join(parts)

    def _too_large(self, what: str) -> BatchTooLargeError:
        return BatchTooLargeError(f"{what} is over the limit for {self.max_rows} rows per request")

    async def _infer_v2(
        self,
        decoder: codec.Decoder,
        body: bytes,
        json_length: bytes | None,
        rid: str,
        started: float,
        shadow: bool,
    ) -> Scored:
        decoded = decoder.v2(body, _json_length(json_length))
        asked = decoded.reasons
        reasons = None if asked is None else await self.model.reasons(decoded.batch, asked.top_k)
        scores, decisions = await self.model.score(decoded.batch, rid, started, reasons, shadow)
        content, binary_length = codec.encode_v2(
            self.model.name,
            self.model.version,
            decoded.id or rid,
            scores,
            decisions,
            decoded.outputs,
            reasons,
            asked is not None and asked.binary,
        )
        headers = [*_JSON, *self._model_headers()]
        if binary_length is not None:
            headers.append((JSON_LENGTH_HEADER, str(binary_length).encode()))
        return content, headers, len(scores)

    async def _predict_v1(
        self,
        decoder: codec.Decoder,
        body: bytes,
        json_length: bytes | None,
        rid: str,
        started: float,
        shadow: bool,
    ) -> Scored:
        batch = decoder.v1(body)
        scores, decisions = await self.model.score(batch, rid, started, shadow=shadow)
        content = codec.encode_v1(self.model.version, scores, decisions)
        return content, [*_JSON, *self._model_headers()], len(scores)

    async def _explain_v1(
        self,
        decoder: codec.Decoder,
        body: bytes,
        json_length: bytes | None,
        rid: str,
        started: float,
        shadow: bool,
    ) -> Scored:
        """`:explain` through the model's own explain hook, as KServe's v1 route would call it."""
        answer = await self.model.explain(codec.load_json(body), {REQUEST_ID_HEADER.decode(): rid}, shadow)
        content = orjson.dumps(answer)
        return content, [*_JSON, *self._model_headers()], len(answer["predictions"])

    def _model_headers(self) -> Headers:
        version = self.model.version
        if self._headers_version != version:  # computed once per loaded version
            self._headers = [(k.encode(), v.encode()) for k, v in self.model.response_headers().items()]
            self._headers_version = version
        return self._headers

    def _reject(
        self,
        error: FraudError,
        scope: Scope,
        rid: str,
        started: float,
        shadow: bool,
        failed: bool = False,
    ) -> tuple[int, bytes, Headers]:
        """The error answer, counted by reason and logged once (with the traceback when `failed`)."""
        reason, message = reason_of(error), message_of(error)
        self.model.series(shadow).rejected(reason)
        level = logging.ERROR if failed else logging.INFO
        fields = {"rows": 0, "error": message, "reason": reason}
        self._log(scope, error.status_code, rid, started, shadow, level, failed, **fields)
        return error.status_code, orjson.dumps({"error": message}), [*_JSON, *self._model_headers()]

    def _log(
        self,
        scope: Scope,
        status: int,
        rid: str,
        started: float,
        shadow: bool,
        level: int = logging.INFO,
        exc_info: bool = False,
        **fields: Any,
    ) -> None:
        logger.log(
            level,
            "%s %s %d",
            scope["method"],
            scope["path"],
            status,
            exc_info=exc_info,
            extra={
                "request_id": rid,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "model_version": self.model.version,
                "role": SHADOW if shadow else self.model.role,
                **fields,
            },
        )


async def _respond(send: Send, status: int, body: bytes, headers: Headers, request_id: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((REQUEST_ID_HEADER, request_id))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json_length(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise codec.InvalidRequestError(
            f"inference-header-content-length must be a number, not {value!r}"
        ) from e


class Routes:
    """Model metadata and server readiness, replacing KServe's versions of the same paths."""

    def __init__(self, model: FraudPredictor) -> None:
        self.model = model

    async def metadata(self, request: Request) -> Response:
        """`/v2/models/{name}[/versions/{version}]`: 404 for another model or version."""
        try:
            self.model.check_served(
                request.path_params["model_name"], request.path_params.get("model_version")
            )
            return _json(200, self.model.metadata(), self.model.response_headers())
        except FraudError as e:
            return _json(e.status_code, {"error": message_of(e)})

    async def model_ready(self, request: Request) -> Response:
        """`/v2/models/{name}[/versions/{version}]/ready`: 404 for another model or version."""
        try:
            self.model.check_served(
                request.path_params["model_name"], request.path_params.get("model_version")
            )
        except FraudError as e:
            return _json(e.status_code, {"error": message_of(e)})
        return await self.ready(request)

    async def repository(self, request: Request) -> Response:
        """One model per server, fixed at start-up: the repository extension's load/unload are refused."""
        refused = "this predictor serves the one model FRAUD_MODEL_URI names; it loads and unloads none"
        return _json(403, {"error": refused})

    async def server_metadata(self, _: Request) -> Response:
        return _json(200, SERVER_METADATA)

    async def ready(self, request: Request) -> Response:
        """Readiness probes call this often: a not-ready answer is a 503 without a log line."""
        if self.model.ready:
            return _json(200, {"name": self.model.name, "ready": True})
        reason = f"model {self.model.name} is not loaded: {self.model.load_error or 'still loading'}"
        return _json(503, {"name": self.model.name, "ready": False, "error": str(NotReadyError(reason))})


def _json(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")
