"""Small batches scored by ONNX Runtime: the model as exported at training (training/export.py).

XGBoost's `inplace_predict` costs a few hundred microseconds per call whatever the batch size, which
dominates single-row scoring; ONNX Runtime scores a row in a few microseconds and stays faster up to
`ONNX_MAX_ROWS` rows (measured: `make bench` prints both runtimes by batch size). The export is used
only after it reproduces the model's probabilities to within `TOLERANCE` on the bundle's reference
sample, and on rows of it with missing values where serving may send them (an unknown category or an
absent optional value is NaN); otherwise the model scores every batch itself.
"""

import logging

import numpy as np
import onnxruntime as ort

from fraudcore.bundle import ONNX_INPUT, ONNX_PROBABILITIES, Bundle
from fraudcore.schema import Schema

logger = logging.getLogger(__name__)

TOLERANCE = 1e-6
"""Largest absolute difference from the model's own probabilities the export may show (float32
sums in another order differ in the last bits)."""

ONNX_MAX_ROWS = 512
"""Batches up to this many rows go to ONNX Runtime, larger ones to the model itself (which is faster
there with one thread: XGBoost takes over between 512 and 1024 rows)."""


class OnnxScorer:
    """One ONNX Runtime session, one thread per call (a pod scales by replicas)."""

    def __init__(self, model: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._outputs = [ONNX_PROBABILITIES]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Fraud probabilities for an encoded float32 `[N, k]` matrix."""
        (probabilities,) = self._session.run(self._outputs, {ONNX_INPUT: x})
        return np.ascontiguousarray(probabilities[:, 1])


def verified_onnx(bundle: Bundle) -> OnnxScorer | None:
    """The bundle's ONNX export, if it has one that loads and reproduces the model on the reference
    sample; else None, with one log line saying why."""
    model, kind = bundle.onnx(), bundle.card.kind
    if model is None:
        logger.info("every batch is scored by %s itself: the bundle has no ONNX export", kind)
        return None
    reference = _with_missing_values(bundle.reference(), bundle.card.schema)
    try:
        scorer = OnnxScorer(model)
        exported = scorer.predict_proba(reference)
    except Exception as e:  # onnxruntime raises its own kinds for a model it cannot run
        logger.warning("ONNX export not used: ONNX Runtime cannot run it (%s)", e)
        return None
    difference = float(np.abs(exported - bundle.scorer.predict_proba(reference)).max())
    if not difference <= TOLERANCE:  # NaN too
        logger.warning("ONNX export not used: it differs from %s by %.3g", kind, difference)
        return None
    logger.info(
        "batches of up to %d rows are scored by ONNX Runtime (max difference %.1g)", ONNX_MAX_ROWS, difference
    )
    return scorer


def _with_missing_values(reference: np.ndarray, schema: Schema, rows: int = 256) -> np.ndarray:
    """The reference sample plus copies of its first rows with NaN in each column that can be NaN
    when serving, one column per row in turn."""
    columns = [i for i, f in enumerate(schema.features) if f.optional or f.kind == "categorical"]
    if not columns:
        return reference
    probe = reference[:rows].copy()
    for offset, column in enumerate(columns):
        probe[offset :: len(columns), column] = np.nan
    return np.concatenate([reference, probe])
