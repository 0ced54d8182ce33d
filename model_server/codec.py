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
from model_server.errors import BadJsonError, BatchTooLargeError, InvalidRequestError, brief, listing

INPUT_DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
PROBABILITY = "fraud_probability"
DECISION = "is_fraud"
OUTPUTS = (PROBABILITY, DECISION)
"""The outputs a request may name in `outputs`, in the order they are returned by default."""
MAX_INPUTS = N_FEATURES + 1
"""Most input tensors a request may carry: one per feature, and one more so that an extra tensor
is named as unknown rather than counted. More are refused before any of them is read."""
_OUTPUT_TYPES = {PROBABILITY: ("FP32", np.dtype("<f4")), DECISION: ("BOOL", np.dtype(np.bool_))}
_FEATURE_SET = frozenset(FEATURES)
_NON_FINITE = (b"NaN", b"Infinity")


@dataclass(frozen=True)
class Tensor:
    """One input tensor as sent: name, declared shape and values (flat, still in the sent dtype)."""

    name: str
    shape: tuple[int, ...]
    values: np.ndarray


Output = tuple[str, bool]
"""A requested output: its name and whether it is sent as a binary tensor."""
ALL_JSON: tuple[Output, ...] = tuple((name, False) for name in OUTPUTS)
ALL_BINARY: tuple[Output, ...] = tuple((name, True) for name in OUTPUTS)


@dataclass(frozen=True)
class V2Request:
    """A decoded v2 request: the feature matrix, the caller's id and the outputs to return."""

    x: np.ndarray
    id: str | None
    outputs: tuple[Output, ...] = ALL_JSON


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        if body[e.pos : e.pos + 8].startswith(_NON_FINITE) or "infinity" in str(e):
            raise BadJsonError(
                f"request body is not valid JSON: non-finite numbers (NaN, Infinity) are not allowed "
                f"(char {e.pos}); send finite numbers"
            ) from e
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
    check_input_count(len(inputs))
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequestError(f"'id' must be a string, not {brief(request_id)}")
    binary_output = _flag(parameters_of(doc.get("parameters"), "request"), "binary_data_output", False)
    outputs = requested_outputs(doc.get("outputs"), binary_output)
    tensors = _read_tensors(inputs, binary, max_rows)
    return V2Request(to_matrix(tensors, max_rows), request_id, outputs)


def check_input_count(count: int) -> None:
    if count > MAX_INPUTS:
        raise InvalidRequestError(
            f"{count} input tensors: this model takes one [N, {N_FEATURES}] tensor or {N_FEATURES} "
            "[N] tensors named by feature"
        )


def parameters_of(value: Any, owner: str) -> dict[str, Any]:
    """A `parameters` object as the spec defines it: names mapped to a string, number or boolean."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{owner} 'parameters' must be an object, not {brief(value)}")
    for name, item in value.items():
        if not isinstance(item, str | int | float):  # bool is an int
            raise InvalidRequestError(
                f"{owner} parameter {brief(name)} must be a string, number or boolean, not {brief(item)}"
            )
    return value


def _flag(parameters: dict[str, Any], name: str, default: bool) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"parameter {name!r} must be true or false, not {brief(value)}")
    return value


def requested_outputs(value: Any, binary: bool) -> tuple[Output, ...]:
    """The outputs named in `outputs` (all of them when it is absent or empty), each with its format."""
    if value is None or value == []:
        return ALL_BINARY if binary else ALL_JSON
    if not isinstance(value, list) or len(value) > len(OUTPUTS):
        raise InvalidRequestError(
            f"'outputs' must be a list of at most {len(OUTPUTS)} objects naming {listing(OUTPUTS)}"
        )
    chosen: dict[str, bool] = {}
    for output in value:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS or name in chosen:
            raise InvalidRequestError(
                f"requested output {brief(name)} is unknown or named twice; this model returns "
                f"{listing(OUTPUTS)}"
            )
        parameters = parameters_of(output.get("parameters"), f"output {name!r}")
        chosen[name] = _flag(parameters, "binary_data", binary)
    return tuple(chosen.items())


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
        parameters = parameters_of(spec.get("parameters"), f"input {brief(name)}")
        if "binary_data_size" in parameters:
            nbytes = parameters["binary_data_size"]
            if type(nbytes) is not int or nbytes != size * dtype.itemsize or offset + nbytes > len(binary):
                raise InvalidRequestError(
                    f"input {brief(name)}: binary_data_size {brief(nbytes)} does not match shape "
                    f"{brief(shape)} of {spec['datatype']} or the bytes sent"
                )
            values = np.frombuffer(binary[offset : offset + nbytes], dtype)
            offset += nbytes
        else:
            values = _json_values(name, spec.get("data"), dtype)
        tensors.append(tensor(name, shape, values))
    return tensors


def check_spec(name: str, datatype: Any, shape: Any, max_rows: int) -> np.dtype:
    """Check an input's declared datatype and shape; returns the numpy dtype of its values."""
    dtype = INPUT_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidRequestError(
            f"input {brief(name)} has datatype {brief(datatype)}; expected FP32 or FP64"
        )
    sizes = isinstance(shape, list | tuple) and 0 < len(shape) <= 2
    if not (sizes and all(type(d) is int and d >= 0 for d in shape)):
        raise InvalidRequestError(
            f"input {brief(name)} has shape {brief(shape)}; expected [N] or [N, {N_FEATURES}]"
        )
    check_rows(shape[0], max_rows)
    return dtype


def tensor(name: str, shape: list[int] | tuple[int, ...], values: np.ndarray) -> Tensor:
    size = math.prod(shape)
    if values.size != size:
        raise InvalidRequestError(
            f"input {brief(name)} has {values.size} values but shape {list(shape)} needs {size}"
        )
    return Tensor(name, tuple(shape), values.reshape(-1))


def _json_values(name: str, data: Any, dtype: np.dtype) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidRequestError(f"input {brief(name)} needs its values in 'data' (a list of numbers)")
    try:
        return np.array(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError) as e:
        raise InvalidRequestError(f"input {brief(name)}: 'data' must hold numbers only ({e})") from e


def _matrix(tensor: Tensor) -> np.ndarray:
    if len(tensor.shape) != 2 or tensor.shape[1] != N_FEATURES:
        raise InvalidRequestError(
            f"input {brief(tensor.name)} has shape {list(tensor.shape)}; expected [N, {N_FEATURES}] in "
            f"the order {FEATURES[0]}, {FEATURES[1]}, …, {FEATURES[-1]}, or {N_FEATURES} tensors of "
            "shape [N] named by feature"
        )
    return tensor.values.reshape(tensor.shape).astype(np.float32, copy=False)


def _columns(tensors: list[Tensor]) -> np.ndarray:
    by_name: dict[str, np.ndarray] = {}
    duplicated: dict[str, None] = {}
    for t in tensors:
        if t.name in by_name:
            duplicated[t.name] = None
        by_name[t.name] = t.values
    if duplicated:
        raise InvalidRequestError(f"input(s) sent more than once: {listing(sorted(duplicated))}")
    unknown = [n for n in by_name if n not in _FEATURE_SET]
    if unknown:
        raise InvalidRequestError(
            f"unknown input(s) {listing(unknown)}: columnar inputs must be named by feature "
            f"({FEATURES[0]}, {FEATURES[1]}, …, {FEATURES[-1]})"
        )
    missing = [f for f in FEATURES if f not in by_name]
    if missing:
        raise InvalidRequestError(f"missing feature(s): {listing(missing)}")
    rows = tensors[0].shape[0]
    for t in tensors:
        if t.shape != (rows,):
            raise InvalidRequestError(
                f"input {brief(t.name)} has shape {list(t.shape)}; columnar inputs need shape [N] with one "
                f"N (here {rows})"
            )
    x = np.empty((rows, N_FEATURES), np.float32)
    for column, feature in enumerate(FEATURES):
        x[:, column] = by_name[feature]
    return x


def encode_v2(
    model_name: str,
    model_version: str,
    request_id: str,
    scores: np.ndarray,
    decisions: np.ndarray,
    outputs: tuple[Output, ...] = ALL_JSON,
) -> tuple[bytes, int | None]:
    """The v2 response body, and the JSON length when some outputs are sent as binary tensors."""
    rows = [len(scores)]
    described: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name, binary in outputs:
        datatype, dtype = _OUTPUT_TYPES[name]
        values = scores if name == PROBABILITY else decisions
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": rows}
        if binary:
            raw.append(values.astype(dtype, copy=False).tobytes())
            output["parameters"] = {"binary_data_size": len(raw[-1])}
        else:
            output["data"] = values
        described.append(output)
    header = orjson.dumps(
        {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": described},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not raw:
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
        problems = [f"missing feature(s) {listing(missing)}"] if missing else []
        problems += [f"unknown feature(s) {listing(unknown)}"] if unknown else []
        raise InvalidRequestError(f"instance {index}: {'; '.join(problems)}")
    return [instance[f] for f in FEATURES]


def predictions_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> dict[str, Any]:
    predictions = [
        {PROBABILITY: s, DECISION: d} for s, d in zip(scores.tolist(), decisions.tolist(), strict=True)
    ]
    return {"predictions": predictions, "model_version": model_version}


def encode_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> bytes:
    return orjson.dumps(predictions_v1(model_version, scores, decisions))
