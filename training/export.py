"""Tree models exported to ONNX, stored in the bundle for the predictor's small batches.

ONNX Runtime scores one row in a few microseconds where XGBoost's own call costs a few hundred; the
predictor uses the export only after it reproduces the model's probabilities on the reference sample
(model_server/small_batches.py), so an export that differs (or none) costs speed, never correctness.
"""

import logging

from onnxmltools.convert import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from fraudcore.bundle import ONNX_INPUT, ONNX_PROBABILITIES, Scorer, XGBoostScorer

logger = logging.getLogger(__name__)


def export_onnx(scorer: Scorer, n_features: int) -> bytes | None:
    """The scorer as an ONNX model (input `ONNX_INPUT`, output `ONNX_PROBABILITIES`), or None when
    its kind needs no export (the logistic model is one matrix product) or the converter refuses it."""
    if not isinstance(scorer, XGBoostScorer):
        return None
    inputs = [(ONNX_INPUT, FloatTensorType([None, n_features]))]
    try:
        model = convert_xgboost(scorer.booster, initial_types=inputs)
    except Exception as e:  # the converter raises many kinds (e.g. on categorical splits)
        logger.info("  no ONNX export (%s): the predictor scores with XGBoost itself", e)
        return None
    if ONNX_PROBABILITIES not in [output.name for output in model.graph.output]:
        logger.info("  no ONNX export: the converted model has no %r output", ONNX_PROBABILITIES)
        return None
    return model.SerializeToString()
