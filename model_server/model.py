"""The fraud scorer as a KServe model: one registry version, its threshold, metrics and audit trail."""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.metrics import PREDICT_HIST_TIME

from fraudcore.bundle import Bundle
from fraudcore.names import SHADOW
from fraudcore.reasons import Reasons, explain
from fraudcore.registry import LoadedModel, Registry
from fraudcore.settings import Settings
from model_server import codec
from model_server.audit import AuditLog
from model_server.batching import MicroBatcher
from model_server.codec import Batch, Decoder
from model_server.errors import NotReadyError, UnknownModelError, brief
from model_server.metrics import ModelMetrics
from model_server.small_batches import ONNX_MAX_ROWS, verified_onnx

logger = logging.getLogger(__name__)

MICRO_BATCH_ROWS = 4096
"""Most rows scored in one model call when queued requests are merged."""
INLINE_ROWS = 64
"""Batches up to this many rows are scored on the event loop: a thread hand-off would cost more."""

INLINE_REASON_ROWS = 8
"""Batches up to this size are explained on the event loop; larger ones on a thread, so that the loop
keeps reading requests meanwhile (explaining a row costs far more than scoring it)."""

MODEL_VERSION_HEADER = "x-model-version"
MODEL_ROLE_HEADER = "x-model-role"


class FraudPredictor(Model):
    """Loads the model `FRAUD_MODEL_URI` names and scores batches decoded by its schema.

    `score` is the one scoring path: the REST routes call it directly, and KServe's own request
    pipeline (gRPC, and any route KServe serves) reaches it through `predict`.
    """

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(name, return_response_headers=True)
        self.settings = settings
        self.role = settings.model_role
        self.loaded: LoadedModel | None = None
        self.load_error: str | None = None
        self.metrics = ModelMetrics("none", self.role)
        self.shadow_metrics = ModelMetrics("none", SHADOW)
        self._batcher: MicroBatcher | None = None
        self._decoder: Decoder | None = None
        self._audit: AuditLog | None = None
        self._latency = PREDICT_HIST_TIME.labels(name)

    @property
    def version(self) -> str:
        return self.loaded.version if self.loaded else "none"

    @property
    def bundle(self) -> Bundle:
        if self.loaded is None:
            raise NotReadyError(f"model {self.name} is not loaded: {self.load_error or 'still loading'}")
        return self.loaded.bundle

    @property
    def decoder(self) -> Decoder:
        """Reads requests by the loaded model's schema; NotReadyError (503) while none is loaded."""
        if self._decoder is None:
            raise NotReadyError(f"model {self.name} is not ready: {self.load_error or 'still loading'}")
        return self._decoder

    def load(self) -> bool:
        """Load the model; a failure leaves the model not ready with one error log line."""
        if self.ready:
            return True
        uri = self.settings.model_uri
        try:
            loaded = Registry(self.settings).load(uri)
        except Exception as e:  # any failure while loading means "not ready", reported once per cause
            error = f"waiting for {uri}: {e}"
            if error != self.load_error:
                logger.error("cannot load model %s: %s", uri, e, extra={"model_uri": uri})
            self.load_error = error
            return False
        self.loaded = loaded
        self.metrics = ModelMetrics(loaded.version, self.role)
        self.shadow_metrics = ModelMetrics(loaded.version, SHADOW)
        self.metrics.announce(loaded.bundle.card.kind, loaded.bundle.card.threshold)
        schema = loaded.bundle.card.schema
        self._decoder = Decoder(schema, self.settings.max_batch_rows)
        self._batcher = _batcher(loaded.bundle)
        if self.settings.audit_dsn:
            self._audit = AuditLog(
                self.settings.audit_dsn,
                self.settings.audit_buffer_rows,
                schema,
                explain=self.explain_rows,
                reasons=self.settings.audit_reasons,
            )
            self._audit.start()
        self.ready = True
        logger.info(
            "serving %s version %s as %s (%s, threshold %.4g)%s",
            loaded.name,
            loaded.version,
            self.role,
            loaded.bundle.card.kind,
            loaded.bundle.card.threshold,
            " from the local cache" if loaded.from_cache else "",
            extra={"model_version": loaded.version, "role": self.role, "from_cache": loaded.from_cache},
        )
        return True

    def keep_loading(self, every: float, then: Callable[[], None]) -> threading.Thread:
        """Retry `load` every `every` seconds on a daemon thread until it succeeds, then call `then`.
        The server stays live and not ready meanwhile, and serves as soon as the version loads: no
        restart, so no crash-loop back-off once the registry answers again."""

        def retry() -> None:
            while not self.load():
                time.sleep(every)
            then()

        thread = threading.Thread(target=retry, name="model-loader", daemon=True)
        thread.start()
        return thread

    def start(self) -> None:
        """Readiness comes from `load` alone (KServe's default would mark any model ready)."""

    def stop(self) -> None:
        self.ready = False
        if self._batcher is not None:
            self._batcher.close()
        if self._audit is not None:
            self._audit.close()

    def series(self, shadow: bool) -> ModelMetrics:
        """The metric series of a request: its own for a mirrored (`shadow`) one, else the role's."""
        return self.shadow_metrics if shadow else self.metrics

    async def score(
        self,
        batch: Batch,
        request_id: str,
        started: float,
        reasons: Reasons | None = None,
        shadow: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fraud probabilities and decisions for a decoded batch; records metrics and the audit rows
        (with `reasons`, when the request asked for them, so the audit log need not compute them).

        A `shadow` request (a copy the route mirrored here) is recorded under the role `shadow`
        and left out of KServe's latency histogram, which keeps counting the role's own traffic."""
        if self._batcher is None or not self.ready:
            raise NotReadyError(f"model {self.name} is not ready: {self.load_error or 'still loading'}")
        bundle = self.bundle
        scores = await self._batcher.score(batch.x)
        decisions = bundle.decide(scores)
        latency = time.perf_counter() - started
        metrics = self.series(shadow)
        if not shadow:
            self._latency.observe(latency)
        metrics.scored(scores, decisions, latency)
        if batch.unknown:
            metrics.unknown_categories(batch.unknown)
        if self._audit is not None:
            self._audit.record(
                request_id,
                batch.x,
                scores,
                decisions,
                self.version,
                SHADOW if shadow else self.role,
                latency,
                text=batch.text,
                reasons=reasons,
            )
        return scores, decisions

    def explain_rows(self, x: np.ndarray, top_k: int) -> Reasons:
        """The top `top_k` reasons of each row of an encoded matrix (any thread)."""
        bundle = self.bundle
        return explain(bundle.scorer, bundle.card.schema, x, top_k)

    async def reasons(self, batch: Batch, top_k: int) -> Reasons:
        """A request's reason codes, large batches off the event loop."""
        if len(batch.x) <= INLINE_REASON_ROWS:
            return self.explain_rows(batch.x, top_k)
        return await asyncio.to_thread(self.explain_rows, batch.x, top_k)

    async def explain(
        self, payload: dict, headers: dict[str, str] | None = None, shadow: bool = False
    ) -> dict[str, Any]:
        """KServe's explain hook (`POST /v1/models/{name}:explain`): the v1 predictions, and each
        instance's reason codes in `explanations`, in-process."""
        started = time.perf_counter()
        batch = self.decoder.v1_doc(payload)
        reasons = await self.reasons(batch, self.decoder.top_k(codec.v1_top_k(payload)))
        request_id = (headers or {}).get("x-request-id", "")
        scores, decisions = await self.score(batch, request_id, started, reasons, shadow)
        return codec.explanations_v1(self.version, scores, decisions, reasons)

    def check_served(self, name: str, version: str | None = None) -> None:
        """Refuse (404) a URL naming another model, or a version other than the loaded one.

        While no model is loaded every version is let through, to be answered "not ready" (503).
        """
        if name != self.name:
            raise UnknownModelError(
                f"model {brief(name)} is not served here; this server serves {self.name!r}"
            )
        if version is not None and self.ready and version != self.version:
            raise UnknownModelError(
                f"model {self.name!r} has no version {brief(version)} here; this server serves version "
                f"{self.version!r}"
            )

    def response_headers(self) -> dict[str, str]:
        """Which model answered: lets a client measure the canary split."""
        return {MODEL_VERSION_HEADER: self.version, MODEL_ROLE_HEADER: self.role}

    async def predict(
        self,
        payload: InferRequest | dict[str, Any],
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse | dict[str, Any]:
        """KServe's pipeline: an InferRequest (v2) or a v1 body already parsed to a dict."""
        started = time.perf_counter()
        asked = None
        if isinstance(payload, InferRequest):
            batch = self.decoder.infer_request(payload)
            request_id = payload.id
            asked = self.decoder.infer_request_reasons(payload)
        else:
            batch = self.decoder.v1_doc(payload)
            request_id = None
        request_id = (headers or {}).get("x-request-id") or request_id or ""
        reasons = None if asked is None else await self.reasons(batch, asked.top_k)
        scores, decisions = await self.score(batch, request_id, started, reasons)
        if response_headers is not None:
            response_headers.update(self.response_headers())
        if not isinstance(payload, InferRequest):
            return codec.predictions_v1(self.version, scores, decisions)
        outputs = [
            InferOutput(codec.PROBABILITY, [len(scores)], "FP32"),
            InferOutput(codec.DECISION, [len(scores)], "BOOL"),
        ]
        outputs[0].set_data_from_numpy(scores)
        outputs[1].set_data_from_numpy(decisions)
        if reasons is not None:
            outputs += _reason_outputs(reasons)
        return InferResponse(request_id, self.name, outputs, model_version=self.version)

    def get_input_types(self) -> list[dict[str, Any]]:
        return codec.input_types(self.bundle.card.schema)

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": codec.PROBABILITY, "datatype": "FP32", "shape": [-1]},
            {"name": codec.DECISION, "datatype": "BOOL", "shape": [-1]},
        ]

    def metadata(self) -> dict[str, Any]:
        """v2 model metadata plus what users ask first: version, role, threshold, training metrics."""
        bundle = self.bundle
        assert self.loaded is not None
        card = bundle.card
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": card.kind,
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
            "parameters": {
                "registered_model": self.loaded.name,
                "model_version": self.version,
                "model_uri": self.settings.model_uri,
                "role": self.role,
                "kind": card.kind,
                "threshold": card.threshold,
                "metrics": card.metrics,
                "trained_at": card.trained_at,
                "data_source": card.data_source,
                "from_cache": self.loaded.from_cache,
                "schema": card.schema.to_dict(),
            },
        }


def _batcher(bundle: Bundle) -> MicroBatcher:
    """The logistic model (one matrix product) inline for any batch. A tree model on the worker
    thread, with its verified ONNX export for small batches: inline up to `INLINE_ROWS` rows, on the
    worker thread up to `ONNX_MAX_ROWS`, and the model itself beyond."""
    scorer = bundle.scorer
    if scorer.kind == "logistic":
        return MicroBatcher(scorer.predict_proba, MICRO_BATCH_ROWS, scorer.predict_proba, MICRO_BATCH_ROWS)
    onnx = verified_onnx(bundle)
    if onnx is None:
        return MicroBatcher(scorer.predict_proba, MICRO_BATCH_ROWS)

    def predict(x: np.ndarray) -> np.ndarray:
        return onnx.predict_proba(x) if len(x) <= ONNX_MAX_ROWS else scorer.predict_proba(x)

    return MicroBatcher(predict, MICRO_BATCH_ROWS, onnx.predict_proba, INLINE_ROWS)


def _reason_outputs(reasons: Reasons) -> list[InferOutput]:
    """The reason tensors as KServe's own response objects."""
    shape = list(reasons.values.shape)
    codes = InferOutput(codec.REASON_CODES, shape, "BYTES")
    codes.set_data_from_numpy(reasons.names.astype(np.object_))
    contributions = InferOutput(codec.REASON_CONTRIBUTIONS, shape, "FP32")
    contributions.set_data_from_numpy(reasons.values)
    return [codes, contributions]
