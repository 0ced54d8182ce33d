"""REST routes registered on KServe's app ahead of its own, and a request-id/token middleware.

KServe's generic v2 route validates every number with pydantic; these routes read the same Open
Inference Protocol bodies with orjson and numpy (see codec.py), answer client mistakes with a 4xx
that names the problem, and log one JSON line per request.
"""

import hmac
import logging
import time
import uuid
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudcore.errors import FraudError
from model_server import codec
from model_server.errors import NotReadyError, UnauthorizedError, UnknownModelError, reason_of
from model_server.model import FraudModel

logger = logging.getLogger("model_server.requests")

REQUEST_ID_HEADER = "x-request-id"
JSON_LENGTH_HEADER = "inference-header-content-length"
PROTECTED_PREFIXES = ("/v1/models", "/v2/models", "/v2/repository")
"""Paths that need the shared token when one is set; health, metrics and server metadata do not."""


def install(app: FastAPI, model: FraudModel, token: str | None) -> None:
    """Add the middleware and routes; call before KServe registers its own (at server start)."""
    routes = Routes(model)
    app.add_middleware(RequestContext, token=token, on_unauthorized=routes.unauthorized)
    app.add_route("/v2/models/{model_name}/infer", routes.infer_v2, methods=["POST"])
    app.add_route("/v1/models/{model_name}:predict", routes.predict_v1, methods=["POST"])
    app.add_route("/v2/models/{model_name}", routes.metadata, methods=["GET"])
    app.add_route("/v2/health/ready", routes.ready, methods=["GET"])


class Routes:
    """The request handlers; each one turns a FraudError into its status and a JSON error body."""

    def __init__(self, model: FraudModel) -> None:
        self.model = model
        self.max_rows = model.settings.max_batch_rows

    async def infer_v2(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request.state.request_id
        try:
            self._check_name(request)
            length = request.headers.get(JSON_LENGTH_HEADER)
            decoded = codec.decode_v2(await request.body(), _json_length(length), self.max_rows)
            scores, decisions = await self.model.score(decoded.x, request_id, started)
            body, json_length = codec.encode_v2(
                self.model.name,
                self.model.version,
                decoded.id or request_id,
                scores,
                decisions,
                decoded.binary_output,
            )
        except FraudError as e:
            return self._reject(e, request, started)
        headers = self.model.response_headers()
        if json_length is not None:
            headers[JSON_LENGTH_HEADER] = str(json_length)
        self._log(request, 200, started, len(scores))
        return Response(body, headers=headers, media_type="application/json")

    async def predict_v1(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self._check_name(request)
            x = codec.decode_v1(await request.body(), self.max_rows)
            scores, decisions = await self.model.score(x, request.state.request_id, started)
        except FraudError as e:
            return self._reject(e, request, started)
        self._log(request, 200, started, len(scores))
        body = codec.encode_v1(self.model.version, scores, decisions)
        return Response(body, headers=self.model.response_headers(), media_type="application/json")

    async def metadata(self, request: Request) -> Response:
        try:
            self._check_name(request)
            return _json(200, self.model.metadata(), self.model.response_headers())
        except FraudError as e:
            return self._reject(e, request, time.perf_counter())

    async def ready(self, request: Request) -> Response:
        if self.model.ready:
            return _json(200, {"ready": True})
        return _json(503, {"ready": False, "error": str(NotReadyError(self._not_ready_reason()))})

    def unauthorized(self, scope: Scope) -> None:
        self.model.metrics.rejected(UnauthorizedError.reason)
        logger.info(
            "refused %s: no valid bearer token",
            scope["path"],
            extra={"request_id": scope["state"]["request_id"], "status": 401, "reason": "unauthorized"},
        )

    def _check_name(self, request: Request) -> None:
        name = request.path_params["model_name"]
        if name != self.model.name:
            raise UnknownModelError(f"model {name!r} is not served here; this server serves {self.model.name!r}")

    def _not_ready_reason(self) -> str:
        return f"model {self.model.name} is not loaded: {self.model.load_error or 'still loading'}"

    def _reject(self, error: FraudError, request: Request, started: float) -> Response:
        reason = reason_of(error)
        self.model.metrics.rejected(reason)
        self._log(request, error.status_code, started, 0, error=str(error), reason=reason)
        return _json(error.status_code, {"error": str(error)}, self.model.response_headers())

    def _log(self, request: Request, status: int, started: float, rows: int, **fields: Any) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        logger.info(
            "%s %s %d",
            request.method,
            request.url.path,
            status,
            extra={
                "request_id": request.state.request_id,
                "status": status,
                "rows": rows,
                "latency_ms": latency_ms,
                "model_version": self.model.version,
                "role": self.model.role,
                **fields,
            },
        )


def _json_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise codec.InvalidRequestError(f"{JSON_LENGTH_HEADER} must be a number, not {value!r}") from e


def _json(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


class RequestContext:
    """Pure ASGI middleware: an `x-request-id` on every response (the caller's when sent) and the
    optional shared-token check (`Authorization: Bearer <FRAUD_API_TOKEN>`) on model routes."""

    def __init__(self, app: ASGIApp, token: str | None, on_unauthorized: Any) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.on_unauthorized = on_unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = authorization = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value
            elif key == b"authorization":
                authorization = value
        if not request_id or len(request_id) > 200 or not request_id.isascii():
            request_id = uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        if self.expected and scope["path"].startswith(PROTECTED_PREFIXES):
            if authorization is None or not hmac.compare_digest(authorization, self.expected):
                self.on_unauthorized(scope)
                error = UnauthorizedError("missing or wrong bearer token (Authorization: Bearer <token>)")
                response = _json(401, {"error": str(error)}, {"www-authenticate": "Bearer"})
                await response(scope, receive, send_with_id)
                return
        await self.app(scope, receive, send_with_id)
