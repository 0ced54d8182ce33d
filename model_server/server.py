"""Assemble and run the KServe model server around the fraud model."""

import argparse
import asyncio
import copy
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kserve
import uvicorn
import uvloop
from kserve import model_server

from fraudcore.settings import Settings
from model_server.model import FraudPredictor
from model_server.routes import ScoringMiddleware, install

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """KServe's server flags this predictor uses (`python -m model_server --help` lists them)."""

    model_name: str = "fraud-detector"
    host: str = "0.0.0.0"
    """Address the HTTP server listens on: all interfaces in a pod; `fraud serve` defaults to loopback."""
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool | None = None
    """`--enable_grpc`; unset: `FRAUD_GRPC_ENABLED` decides (off by default)."""
    workers: int = 1
    max_asyncio_workers: int | None = None
    event_loop: str = "auto"
    timeout_keep_alive: int = 65


def parse_args(argv: Sequence[str] | None = None) -> ServerOptions:
    """KServe's usual flags (`--model_name`, `--http_port`, `--workers` …)."""
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="Fraud-scoring KServe predictor. The model comes from FRAUD_MODEL_URI "
        "(models:/<name>/<version>, models:/<name>@<alias> or a bundle path), the role from "
        "FRAUD_MODEL_ROLE, the registry from MLFLOW_TRACKING_URI.",
        parents=[model_server.parser],
    )
    parser.add_argument(
        "--host", default=ServerOptions.host, help="Address to listen on (default: %(default)s)."
    )
    # Without the flag the setting decides, so the default lives in one place (fraudcore.settings).
    parser.set_defaults(enable_grpc=None)
    args = parser.parse_args(argv)
    return ServerOptions(
        model_name=args.model_name,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        workers=args.workers,
        max_asyncio_workers=args.max_asyncio_workers,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )


def serve(settings: Settings, options: ServerOptions) -> None:
    """Load the model and serve until stopped.

    One worker per process: the predictor's metrics live in the process, and a pod scales by
    replicas. A model that cannot be loaded keeps the server live and not ready, retrying every
    `FRAUD_LOAD_RETRY_SECONDS`; with `FRAUD_FAIL_FAST` on it exits with status 1 instead.
    """
    if options.workers != 1:
        logger.error(
            "--workers %d: this predictor runs one worker per pod; scale with replicas", options.workers
        )
        raise SystemExit(2)
    model = FraudPredictor(options.model_name, settings)
    if not model.load():
        if settings.fail_fast:
            raise SystemExit(1)
        model.keep_loading(settings.load_retry_seconds, then=gc.freeze)
    enable_grpc = settings.grpc_enabled if options.enable_grpc is None else options.enable_grpc
    token = settings.api_token.get_secret_value() if settings.api_token else None
    install(model_server.app, model)
    server = _ModelServer(
        options.host,
        ScoringMiddleware(model_server.app, model, token),
        settings.shadow_port,
        http_port=options.http_port,
        grpc_port=options.grpc_port,
        workers=1,
        enable_grpc=enable_grpc,
        enable_latency_logging=False,
        max_asyncio_workers=options.max_asyncio_workers,
        event_loop=options.event_loop,
        timeout_keep_alive=options.timeout_keep_alive,
    )
    # Registered directly so a model that failed to load is still known (and reported not ready).
    server.register_model(model)
    # Everything alive now (libraries, the model) stays: keep it out of the garbage collector's full
    # passes, which would otherwise walk it during requests.
    gc.freeze()
    server.start([])


class _ModelServer(kserve.ModelServer):
    """KServe's server on a chosen address (KServe's REST server always binds 0.0.0.0), running
    `asgi_app` (KServe's app wrapped) instead of KServe's app itself, and on `shadow_port` too
    when set (the same app: it records requests that arrive there as mirrored copies)."""

    def __init__(
        self, host: str, asgi_app: ScoringMiddleware, shadow_port: int | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.asgi_app = asgi_app
        self.shadow_port = shadow_port

    def setup_event_loop(self) -> None:
        # Called by start() after it created the REST server and before that server binds; uvicorn
        # imports its app by name only when it starts, and takes an app object as it is.
        if self._rest_server is not None:
            config = self._rest_server.config
            config.host = self.host
            config.app = self.asgi_app
            if self.shadow_port:
                # A second uvicorn server on the same loop; on SIGTERM each server's signal capture
                # stops it and hands the signal on to the one before (uvicorn restores and re-raises).
                shadow = copy.copy(config)
                shadow.port = self.shadow_port
                self.servers.append(uvicorn.Server(shadow).serve())
        super().setup_event_loop()
        # One worker runs in start()'s asyncio.run(), which takes a new loop from the policy: without
        # this, asyncio's own loop whatever --event-loop says ("auto" means uvloop when installed).
        if self.event_loop in ("auto", "uvloop"):
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
