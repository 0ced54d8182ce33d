"""Request and response codecs: wire bytes to a float32 `[N, 30]` matrix, and scores back to bytes.

Open Inference Protocol (v2) JSON, its binary tensor extension, and v1 `instances`. Tensors are
converted by numpy in one call each (no Python loop over values) and nothing here knows the model.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from fraudcore.schema import FEATURES, N_FEATURES
from model_server.errors import BadJsonError, BatchTooLargeError, InvalidRequestError

INPUT_DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
PROBABILITY = "fraud_probability"
DECISION = "is_fraud"
_FEATURE_SET = frozenset(FEATURES)


@dataclass(frozen=True)
class Tensor:
    """One input tensor as sent: name, declared shape and values (flat, still in the sent dtype)."""

    name: str
    shape: tuple[int, ...]
    values: np.ndarray


@dataclass(frozen=True)
class V2Request:
    """A decoded v2 request: the feature matrix, the caller's id and whether outputs go binary."""

    x: np.ndarray
    id: str | None
    binary_output: bool


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadJsonError(f"request body is not valid JSON: {e}") from e


def decode_v2(body: bytes, json_length: int | None, max_rows: int) -> V2Request:
    """Decode a v2 infer request body; `json_length` is the binary extension's header value."""
    if json_length is not None and not 0 < json_length <= len(body):
        raise InvalidRequestError(
            f"inference-header-content-length {json_length} does not fit a body of {len(body)} bytes"
        )
    header = body if json_length is None else body[:json_length]
    binary = memoryview(body)[len(header) :]
    doc = load_json(header)
    if not isinstance(doc, dict):
        raise InvalidRequestError("request body must be a JSON object with an 'inputs' list")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'inputs' must be a non-empty list of tensors")
    tensors = _read_tensors(inputs, binary, max_rows)
    request_id = doc.get("id")
    return V2Request(
        to_matrix(tensors, max_rows),
        request_id if isinstance(request_id, str) else None,
        _wants_binary(doc),
    )


def to_matrix(tensors: list[Tensor], max_rows: int) -> np.ndarray:
    """One `[N, 30]` tensor or 30 columnar `[N]` tensors named by feature → float32 `[N, 30]`."""
    columnar = len(tensors) > 1 or (len(tensors[0].shape) == 1 and tensors[0].name in _FEATURE_SET)
    x = _columns(tensors) if columnar else _matrix(tensors[0])
    check_rows(len(x), max_rows)
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        raise InvalidRequestError(f"non-finite value {x[row, col]} in row {row}, feature {FEATURES[col]}")
    return x


def check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise InvalidRequestError("empty batch: the request has no rows to score")
    if rows > max_rows:
        raise BatchTooLargeError(f"batch of {rows} rows is over the limit of {max_rows} rows per request")


def _read_tensors(inputs: list[Any], binary: memoryview, max_rows: int) -> list[Tensor]:
    tensors, offset = [], 0
    for spec in inputs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError("every input must be an object with a 'name'")
        name, shape = spec["name"], spec.get("shape")
        dtype = check_spec(name, spec.get("datatype"), shape, max_rows)
        size = math.prod(shape)
        parameters = spec.get("parameters")
        if isinstance(parameters, dict) and "binary_data_size" in parameters:
            nbytes = parameters["binary_data_size"]
            if type(nbytes) is not int or nbytes != size * dtype.itemsize or offset + nbytes > len(binary):
                raise InvalidRequestError(
                    f"input {name!r}: binary_data_size {nbytes} does not match shape {shape} of "
                    f"{spec['datatype']} or the bytes sent"
                )
            values = np.frombuffer(binary[offset : offset + nbytes], dtype)
            offset += nbytes
        else:
            values = _json_values(name, spec.get("data"), dtype)
        tensors.append(tensor(name, shape, values))
    return tensors


def check_spec(name: str, datatype: Any, shape: Any, max_rows: int) -> np.dtype:
    """Check an input's declared datatype and shape; returns the numpy dtype of its values."""
    if datatype not in INPUT_DTYPES:
        raise InvalidRequestError(f"input {name!r} has datatype {datatype!r}; expected FP32 or FP64")
    if not (isinstance(shape, list | tuple) and shape and all(type(d) is int and d >= 0 for d in shape)):
        raise InvalidRequestError(f"input {name!r} has shape {shape!r}; expected a list of sizes")
    check_rows(shape[0], max_rows)
    return INPUT_DTYPES[datatype]


def tensor(name: str, shape: list[int] | tuple[int, ...], values: np.ndarray) -> Tensor:
    size = math.prod(shape)
    if values.size != size:
        raise InvalidRequestError(
            f"input {name!r} has {values.size} values but shape {list(shape)} needs {size}"
        )
    return Tensor(name, tuple(shape), values.reshape(-1))


def _json_values(name: str, data: Any, dtype: np.dtype) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidRequestError(f"input {name!r} needs its values in 'data' (a list of numbers)")
    try:
        return np.array(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError) as e:
        raise InvalidRequestError(f"input {name!r}: 'data' must hold numbers only ({e})") from e


def _matrix(tensor: Tensor) -> np.ndarray:
    if len(tensor.shape) != 2 or tensor.shape[1] != N_FEATURES:
        raise InvalidRequestError(
            f"input {tensor.name!r} has shape {list(tensor.shape)}; expected [N, {N_FEATURES}] in the order "
            f"{FEATURES[0]}, {FEATURES[1]}, …, {FEATURES[-1]}, or {N_FEATURES} tensors of shape [N] "
            "named by feature"
        )
    return tensor.values.reshape(tensor.shape).astype(np.float32, copy=False)


def _columns(tensors: list[Tensor]) -> np.ndarray:
    names = [t.name for t in tensors]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidRequestError(f"input(s) sent more than once: {', '.join(duplicated)}")
    unknown = [n for n in names if n not in _FEATURE_SET]
    if unknown:
        raise InvalidRequestError(
            f"unknown input(s) {', '.join(unknown)}: columnar inputs must be named by feature "
            f"({FEATURES[0]}, {FEATURES[1]}, …, {FEATURES[-1]})"
        )
    missing = [f for f in FEATURES if f not in set(names)]
    if missing:
        raise InvalidRequestError(f"missing feature(s): {', '.join(missing)}")
    rows = tensors[0].shape[0]
    for t in tensors:
        if t.shape != (rows,):
            raise InvalidRequestError(
                f"input {t.name!r} has shape {list(t.shape)}; columnar inputs need shape [N] with one N "
                f"(here {rows})"
            )
    x = np.empty((rows, N_FEATURES), np.float32)
    by_name = {t.name: t.values for t in tensors}
    for column, feature in enumerate(FEATURES):
        x[:, column] = by_name[feature]
    return x


def _wants_binary(doc: dict[str, Any]) -> bool:
    parameters = doc.get("parameters")
    if isinstance(parameters, dict) and parameters.get("binary_data_output"):
        return True
    outputs = doc.get("outputs")
    return isinstance(outputs, list) and any(
        isinstance(o, dict) and isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")
        for o in outputs
    )


def encode_v2(
    model_name: str,
    model_version: str,
    request_id: str,
    scores: np.ndarray,
    decisions: np.ndarray,
    binary: bool,
) -> tuple[bytes, int | None]:
    """The v2 response body, and the JSON length when outputs are sent as binary tensors."""
    rows = [len(scores)]
    outputs: list[dict[str, Any]] = [
        {"name": PROBABILITY, "datatype": "FP32", "shape": rows},
        {"name": DECISION, "datatype": "BOOL", "shape": rows},
    ]
    if binary:
        raw = (scores.astype("<f4", copy=False).tobytes(), decisions.astype(np.bool_, copy=False).tobytes())
        for output, part in zip(outputs, raw, strict=True):
            output["parameters"] = {"binary_data_size": len(part)}
    else:
        outputs[0]["data"], outputs[1]["data"] = scores, decisions
    header = orjson.dumps(
        {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": outputs},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not binary:
        return header, None
    return b"".join((header, *raw)), len(header)


def decode_v1(body: bytes, max_rows: int) -> np.ndarray:
    """v1 `{"instances": [...]}` with each instance a dict of 30 features or a list of 30 numbers."""
    return rows_v1(load_json(body), max_rows)


def rows_v1(doc: Any, max_rows: int) -> np.ndarray:
    """The feature matrix of a parsed v1 body."""
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(instances, list):
        raise InvalidRequestError("request body must be a JSON object with an 'instances' list")
    check_rows(len(instances), max_rows)
    if all(isinstance(i, dict) for i in instances):
        instances = [_row_of(i, n) for n, i in enumerate(instances)]
    try:
        x = np.array(instances, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise InvalidRequestError(
            f"'instances' must be objects keyed by feature or lists of {N_FEATURES} numbers ({e})"
        ) from e
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise InvalidRequestError(f"each instance needs {N_FEATURES} values; got shape {list(x.shape)}")
    return to_matrix([Tensor("instances", x.shape, x.reshape(-1))], max_rows)


def _row_of(instance: dict[str, Any], index: int) -> list[Any]:
    if instance.keys() != _FEATURE_SET:
        missing = [f for f in FEATURES if f not in instance]
        unknown = [k for k in instance if k not in _FEATURE_SET]
        problems = [f"missing feature(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown feature(s) {', '.join(map(str, unknown))}"] if unknown else []
        raise InvalidRequestError(f"instance {index}: {'; '.join(problems)}")
    return [instance[f] for f in FEATURES]


def predictions_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> dict[str, Any]:
    predictions = [
        {PROBABILITY: s, DECISION: d} for s, d in zip(scores.tolist(), decisions.tolist(), strict=True)
    ]
    return {"predictions": predictions, "model_version": model_version}


def encode_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> bytes:
    return orjson.dumps(predictions_v1(model_version, scores, decisions))
