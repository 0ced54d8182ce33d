"""Request and response codecs: wire bytes to the model's encoded matrix, and scores back to bytes.

Open Inference Protocol (v2) JSON, its binary tensor extension, and v1 `instances`. Requests are read
by the loaded model's schema (`Decoder`): one `[N]` tensor per feature, named by feature (numbers for
a numeric feature, BOOL or 0/1 numbers for a boolean one, BYTES for a categorical one), or, when
every feature is numeric, one `[N, k]` tensor in schema order. Tensors are read by tensors.py (numpy,
one call per tensor of numbers); a categorical value costs one dict lookup. An unknown category is
scored (NaN, as training treats it) and counted, not refused.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from kserve import InferRequest

from fraudcore.reasons import TOP_K_PARAMETER, Reasons, top_k_of
from fraudcore.schema import Feature, Kind, Schema
from model_server.errors import BadJsonError, BatchTooLargeError, InvalidRequestError, brief, listing
from model_server.tensors import (
    BOOL,
    BYTES,
    DATATYPES,
    NUMBER_DTYPES,
    Tensor,
    bad_size,
    binary_strings,
    binary_values,
    json_values,
    tensor,
)

DATATYPE_OF_KIND: dict[Kind, str] = {"numeric": "FP32", "categorical": BYTES, "boolean": BOOL}
"""The datatype model metadata lists for a feature of each kind."""
ACCEPTED: dict[Kind, frozenset[str]] = {
    "numeric": frozenset(NUMBER_DTYPES),
    "boolean": frozenset({*NUMBER_DTYPES, BOOL}),
    "categorical": frozenset({BYTES}),
}
_EXPECTED: dict[Kind, str] = {
    "numeric": "numbers (FP32, FP64, INT or UINT)",
    "boolean": "BOOL (or numbers 0 and 1)",
    "categorical": "BYTES (strings)",
}
MATRIX_INPUT = "features"
"""The name metadata gives the `[N, k]` tensor of an all-numeric schema (any name is accepted)."""
PROBABILITY = "fraud_probability"
DECISION = "is_fraud"
OUTPUTS = (PROBABILITY, DECISION)
"""The outputs returned by default, in this order."""
REASON_CODES = "reason_codes"
REASON_CONTRIBUTIONS = "reason_contributions"
NAMEABLE = (*OUTPUTS, REASON_CODES)
"""The outputs a request may name in `outputs`: naming `reason_codes` also returns
`reason_contributions` (their log-odds), and only then are reasons computed."""
MAX_BYTES_PER_VALUE = 32
"""Room per value when bounding the body size (a JSON float32 needs at most ~16), besides the
feature's name (repeated on every v1 row) and its longest category."""
HEADER_BYTES = 65536
"""Room in the body bound for everything that is not a value: the JSON header, names, parameters."""
_OUTPUT_TYPES = {PROBABILITY: ("FP32", np.dtype("<f4")), DECISION: ("BOOL", np.dtype(np.bool_))}
_NON_FINITE = (b"NaN", b"Infinity")


@dataclass(frozen=True)
class Batch:
    """Decoded rows: the encoded float32 `[N, k]` matrix the model scores, each categorical feature's
    values as sent (str, None where missing: the audit log keeps an unknown category, which is NaN in
    `x`), and how many values of each categorical feature were not among its training categories."""

    x: np.ndarray
    text: dict[str, np.ndarray] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)


Output = tuple[str, bool]
"""A requested output: its name and whether it is sent as a binary tensor."""
ALL_JSON: tuple[Output, ...] = tuple((name, False) for name in OUTPUTS)
ALL_BINARY: tuple[Output, ...] = tuple((name, True) for name in OUTPUTS)


@dataclass(frozen=True)
class ReasonRequest:
    """Reason codes asked for: how many per row, and whether they are sent as binary tensors."""

    top_k: int
    binary: bool = False


@dataclass(frozen=True)
class V2Request:
    """A decoded v2 request: the rows, the caller's id, the outputs to return (besides the reason
    codes) and the reason codes, when asked for."""

    batch: Batch
    id: str | None
    outputs: tuple[Output, ...] = ALL_JSON
    reasons: ReasonRequest | None = None


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


def input_types(schema: Schema) -> list[dict[str, Any]]:
    """The inputs model metadata lists: the `[N, k]` tensor of an all-numeric schema, then one `[N]`
    tensor per feature."""
    columns = [{"name": f.name, "datatype": DATATYPE_OF_KIND[f.kind], "shape": [-1]} for f in schema.features]
    if not schema.all_numeric:
        return columns
    return [{"name": MATRIX_INPUT, "datatype": "FP32", "shape": [-1, len(schema)]}, *columns]


class Decoder:
    """Reads v2 and v1 requests into a `Batch` for one schema; built once when a model is loaded, so
    a request pays for no per-schema set-up."""

    def __init__(self, schema: Schema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.max_inputs = len(schema) + 1
        """Most input tensors a request may carry: one per feature, and one more so that an extra
        tensor is named as unknown rather than counted. More are refused before any of them is read."""
        self.max_bytes = max_rows * sum(map(_room, schema.features)) + HEADER_BYTES
        """A body this large cannot hold `max_rows` rows of sensible values: refused unread."""
        self._booleans = tuple(i for i, f in enumerate(schema.features) if f.kind == "boolean")
        self._categorical = tuple(i for i, f in enumerate(schema.features) if f.kind == "categorical")
        # A list (not a tuple): it indexes the columns of the numbers and booleans in `x[:, columns]`.
        self._numbers = [i for i, f in enumerate(schema.features) if f.kind != "categorical"]
        self._number_names = tuple(schema.features[i].name for i in self._numbers)
        self._all_numeric = schema.all_numeric
        self._dims = 2 if self._all_numeric else 1
        self._shapes = (
            f"[N] or [N, {len(schema)}]"
            if self._all_numeric
            else "[N], one tensor per feature (the model has categorical or boolean features)"
        )

    # --- v2 ---------------------------------------------------------------------------------------

    def v2(self, body: bytes, json_length: int | None) -> V2Request:
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
        self.check_input_count(len(inputs))
        request_id = doc.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise InvalidRequestError(f"'id' must be a string, not {brief(request_id)}")
        parameters = parameters_of(doc.get("parameters"), "request")
        binary_output = _flag(parameters, "binary_data_output", False)
        outputs = requested_outputs(doc.get("outputs"), binary_output)
        outputs, reasons = self.reason_request(outputs, parameters.get(TOP_K_PARAMETER))
        return V2Request(self.batch(self._read_tensors(inputs, binary)), request_id, outputs, reasons)

    def reason_request(
        self, outputs: tuple[Output, ...], top_k: object
    ) -> tuple[tuple[Output, ...], ReasonRequest | None]:
        """Take `reason_codes` out of the requested outputs, with the `top_k` it is asked for."""
        for name, binary in outputs:
            if name == REASON_CODES:
                others = tuple(output for output in outputs if output[0] != REASON_CODES)
                return others, ReasonRequest(self.top_k(top_k), binary)
        return outputs, None

    def top_k(self, value: object) -> int:
        """How many reasons per row a request asks for (400 naming the problem when unusable)."""
        try:
            return top_k_of(value, self.schema)
        except ValueError as e:
            raise InvalidRequestError(str(e)) from e

    def infer_request_reasons(self, request: InferRequest) -> ReasonRequest | None:
        """The reason codes a KServe InferRequest asks for in its requested outputs, if any."""
        for output in request.request_outputs or ():
            if output.name == REASON_CODES:
                top_k = (request.parameters or {}).get(TOP_K_PARAMETER)
                return ReasonRequest(self.top_k(top_k))  # KServe encodes the response itself
        return None

    def infer_request(self, request: InferRequest) -> Batch:
        """KServe's own request object (its gRPC server and generic routes): the same checks."""
        self.check_input_count(len(request.inputs))
        tensors = []
        for i in request.inputs:
            self.check_spec(i.name, i.datatype, i.shape)
            try:
                values = i.as_numpy()
            except (ValueError, TypeError) as e:
                raise InvalidRequestError(f"input {brief(i.name)}: unreadable data ({e})") from e
            tensors.append(tensor(i.name, i.datatype, i.shape, values))
        return self.batch(tensors)

    def check_input_count(self, count: int) -> None:
        if count > self.max_inputs:
            k = len(self.schema)
            takes = f"one [N, {k}] tensor or {k} [N] tensors" if self._all_numeric else f"{k} [N] tensors"
            raise InvalidRequestError(f"{count} input tensors: this model takes {takes} named by feature")

    def check_spec(self, name: str, datatype: Any, shape: Any) -> None:
        """Check an input's declared datatype and shape (the values are read after)."""
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise InvalidRequestError(
                f"input {brief(name)} has datatype {brief(datatype)}; expected one of {', '.join(DATATYPES)}"
            )
        sizes = isinstance(shape, list | tuple) and 0 < len(shape) <= self._dims
        if not (sizes and all(type(d) is int and d >= 0 for d in shape)):
            raise InvalidRequestError(
                f"input {brief(name)} has shape {brief(shape)}; expected {self._shapes}"
            )
        check_rows(shape[0], self.max_rows)

    def _read_tensors(self, inputs: list[Any], binary: memoryview) -> list[Tensor]:
        tensors, offset = [], 0
        for spec in inputs:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise InvalidRequestError("every input must be an object with a 'name'")
            name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
            self.check_spec(name, datatype, shape)
            sent = spec.get("parameters")
            parameters = {} if sent is None else parameters_of(sent, f"input {brief(name)}")
            if "binary_data_size" in parameters:
                nbytes = parameters["binary_data_size"]
                if type(nbytes) is not int or not 0 <= nbytes <= len(binary) - offset:
                    raise bad_size(name, nbytes, shape, datatype)
                values = binary_values(name, datatype, shape, binary[offset : offset + nbytes])
                offset += nbytes
            else:
                values = json_values("input", name, datatype, spec.get("data"))
            tensors.append(tensor(name, datatype, shape, values))
        return tensors

    def batch(self, tensors: list[Tensor]) -> Batch:
        """One `[N, k]` tensor (all-numeric schemas) or `[N]` tensors named by feature → a Batch."""
        first = tensors[0]
        columnar = len(tensors) > 1 or len(first.shape) == 1
        batch = self._columns(tensors) if columnar else self._matrix(first)
        self._check_values(batch.x)
        return batch

    def _matrix(self, t: Tensor) -> Batch:
        k = len(self.schema)
        if t.shape[1] != k:
            names = self.schema.names
            raise InvalidRequestError(
                f"input {brief(t.name)} has shape {list(t.shape)}; expected [N, {k}] in the order "
                f"{listing(names)}, or {k} tensors of shape [N] named by feature"
            )
        if t.datatype not in NUMBER_DTYPES:
            raise InvalidRequestError(
                f"input {brief(t.name)} has datatype {t.datatype}; the [N, {k}] tensor takes numbers "
                f"({', '.join(NUMBER_DTYPES)})"
            )
        return Batch(t.values.reshape(t.shape).astype(np.float32, copy=False))

    def _columns(self, tensors: list[Tensor]) -> Batch:
        by_name = self._by_feature(tensors)
        rows = tensors[0].shape[0]
        for t in tensors:
            if t.shape != (rows,):
                raise InvalidRequestError(
                    f"input {brief(t.name)} has shape {list(t.shape)}; columnar inputs need shape [N] with "
                    f"one N (here {rows})"
                )
        x = np.empty((rows, len(self.schema)), np.float32)
        text: dict[str, np.ndarray] = {}
        unknown: dict[str, int] = {}
        for column, feature in enumerate(self.schema.features):
            t = by_name.get(feature.name)
            if t is not None and t.datatype not in ACCEPTED[feature.kind]:
                raise InvalidRequestError(
                    f"input {brief(t.name)} has datatype {t.datatype}, but feature {feature.name} is "
                    f"{feature.kind}: send {_EXPECTED[feature.kind]}"
                )
            if feature.kind != "categorical":
                x[:, column] = np.nan if t is None else t.values
                continue
            sent = np.full(rows, None, object) if t is None else t.values
            x[:, column], text[feature.name], count = _categories(feature, sent)
            if count:
                unknown[feature.name] = count
        return Batch(x, text, unknown)

    def _by_feature(self, tensors: list[Tensor]) -> dict[str, Tensor]:
        """The tensors by name, refusing duplicates, unknown names and missing required features."""
        by_name: dict[str, Tensor] = {}
        duplicated: dict[str, None] = {}
        for t in tensors:
            if t.name in by_name:
                duplicated[t.name] = None
            by_name[t.name] = t
        if duplicated:
            raise InvalidRequestError(f"input(s) sent more than once: {listing(sorted(duplicated))}")
        positions = self.schema.positions
        unknown = [n for n in by_name if n not in positions]
        if unknown:
            raise InvalidRequestError(
                f"unknown input(s) {listing(unknown)}: columnar inputs must be named by feature "
                f"({listing(self.schema.names)})"
            )
        missing = [f.name for f in self.schema.features if not f.optional and f.name not in by_name]
        if missing:
            raise InvalidRequestError(f"missing feature(s): {listing(missing)}")
        return by_name

    def _check_values(self, x: np.ndarray) -> None:
        """Refuse infinities, missing values of required features and booleans other than 0 and 1,
        naming the first. One pass over the matrix when every value is a finite number."""
        if not np.isfinite(x).all():
            for column, feature in enumerate(self.schema.features):
                if feature.kind != "categorical":  # a categorical NaN is checked when encoded
                    _check_finite(x[:, column], feature)
        for column in self._booleans:
            values = x[:, column]
            bad = (values != 0) & (values != 1) & ~np.isnan(values)
            if bad.any():
                row = int(np.argmax(bad))
                raise InvalidRequestError(
                    f"value {values[row]:g} in row {row}, feature {self.schema.features[column].name}: a "
                    "boolean feature takes true or false (or 0 and 1)"
                )

    # --- v1 ---------------------------------------------------------------------------------------

    def v1(self, body: bytes) -> Batch:
        """v1 `{"instances": [...]}`: each instance a dict keyed by feature, or (all-numeric schemas)
        a list of the k values in schema order."""
        return self.v1_doc(load_json(body))

    def v1_doc(self, doc: Any) -> Batch:
        """The batch of a parsed v1 body."""
        instances = doc.get("instances") if isinstance(doc, dict) else None
        if not isinstance(instances, list):
            raise InvalidRequestError("request body must be a JSON object with an 'instances' list")
        check_rows(len(instances), self.max_rows)
        if all(isinstance(i, dict) for i in instances):
            return self._v1_dicts(instances)
        k = len(self.schema)
        if not self._all_numeric:
            raise InvalidRequestError(
                "'instances' must be objects keyed by feature: this model has categorical or boolean "
                "features, so lists of values are not accepted"
            )
        try:
            x = np.array(instances, dtype=np.float32)
        except (ValueError, TypeError) as e:
            raise InvalidRequestError(
                f"'instances' must be objects keyed by feature or lists of {k} numbers ({e})"
            ) from e
        if x.ndim != 2 or x.shape[1] != k:
            raise InvalidRequestError(f"each instance needs {k} values; got shape {list(x.shape)}")
        return self.batch([Tensor("instances", "FP32", x.shape, x.reshape(-1))])

    def _v1_dicts(self, instances: list[dict[str, Any]]) -> Batch:
        """Dict instances (null or absent: missing) → a Batch: the numbers and booleans of all rows in
        one numpy call, each categorical feature's values looked up one by one."""
        positions, complete = self.schema.positions, True
        for index, instance in enumerate(instances):
            if instance.keys() != positions.keys():
                self._check_keys(instance, index)
                complete = False
        if self._all_numeric:
            x = self._v1_numbers(instances, complete)
        else:
            x = np.empty((len(instances), len(self.schema)), np.float32)
            x[:, self._numbers] = self._v1_numbers(instances, complete)
        text: dict[str, np.ndarray] = {}
        unknown: dict[str, int] = {}
        for column in self._categorical:
            feature = self.schema.features[column]
            sent = np.fromiter((i.get(feature.name) for i in instances), object, len(instances))
            x[:, column], text[feature.name], count = _categories(feature, sent)
            if count:
                unknown[feature.name] = count
        self._check_values(x)
        return Batch(x, text, unknown)

    def _v1_numbers(self, instances: list[dict[str, Any]], complete: bool) -> np.ndarray:
        """The numeric and boolean features' values of dict instances as float32 `[N, m]`;
        `complete`: every instance has every feature (read without `get`, the common case)."""
        names = self._number_names
        if complete:
            rows = [[instance[name] for name in names] for instance in instances]
        else:
            rows = [[instance.get(name) for name in names] for instance in instances]
        try:
            return np.array(rows, np.float32).reshape(len(rows), len(names))
        except (ValueError, TypeError) as e:
            features = [self.schema.features[column] for column in self._numbers]
            for column, feature in enumerate(features):  # name the first feature holding something else
                datatype = BOOL if feature.kind == "boolean" else "FP64"
                json_values("feature", feature.name, datatype, [row[column] for row in rows])
            raise InvalidRequestError(f"'instances' must hold one value per feature ({e})") from e

    def _check_keys(self, instance: dict[str, Any], index: int) -> None:
        positions = self.schema.positions
        missing = [f.name for f in self.schema.features if not f.optional and f.name not in instance]
        unknown = [k for k in instance if k not in positions]
        problems = [f"missing feature(s) {listing(missing)}"] if missing else []
        problems += [f"unknown feature(s) {listing(unknown)}"] if unknown else []
        if problems:
            raise InvalidRequestError(f"instance {index}: {'; '.join(problems)}")


def _room(feature: Feature) -> int:
    longest = max(map(len, feature.categories), default=0)
    return len(feature.name) + longest + MAX_BYTES_PER_VALUE


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
    if not isinstance(value, list) or len(value) > len(NAMEABLE):
        raise InvalidRequestError(
            f"'outputs' must be a list of at most {len(NAMEABLE)} objects naming {listing(NAMEABLE)}"
        )
    chosen: dict[str, bool] = {}
    for output in value:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in NAMEABLE or name in chosen:
            raise InvalidRequestError(
                f"requested output {brief(name)} is unknown or named twice; this model returns "
                f"{listing(NAMEABLE)}"
            )
        parameters = parameters_of(output.get("parameters"), f"output {name!r}")
        chosen[name] = _flag(parameters, "binary_data", binary)
    return tuple(chosen.items())


def check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise InvalidRequestError("empty batch: the request has no rows to score")
    if rows > max_rows:
        raise BatchTooLargeError(f"batch of {rows} rows is over the limit of {max_rows} rows per request")


def _categories(feature: Feature, sent: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A categorical feature's values as sent → its codes (NaN: missing or unknown), the values as
    text (None where missing) and how many were unknown categories."""
    types = set(map(type, sent))
    text = sent
    if bytes in types:  # binary tensors and KServe's own requests carry bytes
        try:
            text = np.fromiter((v.decode() if type(v) is bytes else v for v in sent), object, len(sent))
        except UnicodeDecodeError as e:
            raise InvalidRequestError(f"feature {feature.name}: BYTES values must be UTF-8 ({e})") from e
        types = (types - {bytes}) | {str}
    if not types <= {str, type(None)}:
        wrong = next(v for v in sent if not isinstance(v, str | bytes | None))
        raise InvalidRequestError(
            f"feature {feature.name} is categorical: its values must be strings, not {brief(wrong)}"
        )
    missing = 0
    if type(None) in types:
        absent = np.fromiter((v is None for v in text), bool, len(text))
        if not feature.optional:
            raise InvalidRequestError(
                f"no value (null) in row {int(np.argmax(absent))} of required feature {feature.name}"
            )
        missing = int(absent.sum())
    codes = feature.encode(text)
    return codes, text, int(np.isnan(codes).sum()) - missing


def _check_finite(values: np.ndarray, feature: Feature) -> None:
    bad = ~np.isfinite(values)
    if feature.optional:
        bad &= ~np.isnan(values)
    if not bad.any():
        return
    row = int(np.argmax(bad))
    if np.isnan(values[row]):
        raise InvalidRequestError(f"no value (null or NaN) in row {row} of required feature {feature.name}")
    raise InvalidRequestError(f"non-finite value {values[row]} in row {row}, feature {feature.name}")


def encode_v2(
    model_name: str,
    model_version: str,
    request_id: str,
    scores: np.ndarray,
    decisions: np.ndarray,
    outputs: tuple[Output, ...] = ALL_JSON,
    reasons: Reasons | None = None,
    reasons_binary: bool = False,
) -> tuple[bytes, int | None]:
    """The v2 response body, and the JSON length when some outputs are sent as binary tensors;
    `reasons` adds `reason_codes` and `reason_contributions` after the other outputs."""
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
    if reasons is not None:
        _reason_outputs(reasons, reasons_binary, described, raw)
    header = orjson.dumps(
        {"model_name": model_name, "model_version": model_version, "id": request_id, "outputs": described},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not raw:
        return header, None
    return b"".join((header, *raw)), len(header)


def _reason_outputs(
    reasons: Reasons, binary: bool, described: list[dict[str, Any]], raw: list[bytes]
) -> None:
    """Append the two `[N, k]` reason tensors, names as BYTES and their log-odds as FP32."""
    shape = list(reasons.values.shape)
    names = reasons.names.ravel().tolist()
    values = reasons.values.astype("<f4", copy=False).ravel()
    for name, datatype, data, packed in (
        (REASON_CODES, BYTES, names, binary_strings(names) if binary else b""),
        (REASON_CONTRIBUTIONS, "FP32", values, values.tobytes() if binary else b""),
    ):
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw.append(packed)
            output["parameters"] = {"binary_data_size": len(packed)}
        else:
            output["data"] = data
        described.append(output)


def predictions_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> dict[str, Any]:
    predictions = [
        {PROBABILITY: s, DECISION: d} for s, d in zip(scores.tolist(), decisions.tolist(), strict=True)
    ]
    return {"predictions": predictions, "model_version": model_version}


def encode_v1(model_version: str, scores: np.ndarray, decisions: np.ndarray) -> bytes:
    return orjson.dumps(predictions_v1(model_version, scores, decisions))


def v1_top_k(doc: Any) -> object:
    """The `top_k` of a v1 explain body's `parameters` object (None when not sent)."""
    parameters = doc.get("parameters") if isinstance(doc, dict) else None
    return parameters_of(parameters, "request").get(TOP_K_PARAMETER)


def explanations_v1(
    model_version: str, scores: np.ndarray, decisions: np.ndarray, reasons: Reasons
) -> dict[str, Any]:
    """KServe's v1 explain answer: the predictions, and per instance its reasons, strongest first."""
    return predictions_v1(model_version, scores, decisions) | {"explanations": reasons.as_json()}
