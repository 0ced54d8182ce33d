"""v2 input tensors as sent: their datatypes, and their values read from JSON `data` or from the
binary tensor extension, knowing nothing of the model (codec.py assembles them by its schema).

Numbers are converted by numpy in one call per tensor; a BYTES element costs one Python step.
"""

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_server.errors import InvalidRequestError, brief

NUMBER_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in (
        ("FP32", "<f4"), ("FP64", "<f8"),
        ("INT8", "i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"),
        ("UINT8", "u1"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"),
    )
}  # fmt: skip
"""v2 datatypes a numeric value may come as, with their little-endian binary layout."""
BOOL, BYTES = "BOOL", "BYTES"
DATATYPES: tuple[str, ...] = (*NUMBER_DTYPES, BOOL, BYTES)
"""Every input datatype the predictor reads."""
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class Tensor:
    """One input tensor as sent: name, datatype, declared shape and values (flat). Numbers stay in the
    sent dtype (float, NaN for JSON null, where a null was sent); BYTES values are str, bytes or None."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray


def tensor(name: str, datatype: str, shape: list[int] | tuple[int, ...], values: np.ndarray) -> Tensor:
    size = math.prod(shape)
    if values.size != size:
        raise InvalidRequestError(
            f"input {brief(name)} has {values.size} values but shape {list(shape)} needs {size}"
        )
    return Tensor(name, datatype, tuple(shape), values.reshape(-1))


def bad_size(name: str, nbytes: Any, shape: Any, datatype: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"input {brief(name)}: binary_data_size {brief(nbytes)} does not match shape {brief(shape)} of "
        f"{datatype} or the bytes sent"
    )


def binary_values(name: str, datatype: str, shape: list[int], raw: memoryview) -> np.ndarray:
    """A binary tensor's values: fixed-size little-endian elements, one byte per BOOL, and for BYTES
    each element a 4-byte little-endian length and that many bytes."""
    size = math.prod(shape)
    if datatype == BYTES:
        return _binary_strings(name, shape, size, raw)
    itemsize = 1 if datatype == BOOL else NUMBER_DTYPES[datatype].itemsize
    if len(raw) != size * itemsize:
        raise bad_size(name, len(raw), shape, datatype)
    if datatype == BOOL:
        return np.frombuffer(raw, np.uint8) != 0
    return np.frombuffer(raw, NUMBER_DTYPES[datatype])


def _binary_strings(name: str, shape: list[int], size: int, raw: memoryview) -> np.ndarray:
    if size * _LENGTH.size > len(raw):  # before allocating: every element needs its length
        raise bad_size(name, len(raw), shape, BYTES)
    values = np.empty(size, object)
    at = 0
    for index in range(size):
        if at + _LENGTH.size > len(raw):
            raise bad_size(name, len(raw), shape, BYTES)
        (length,) = _LENGTH.unpack_from(raw, at)
        at += _LENGTH.size
        if at + length > len(raw):
            raise bad_size(name, len(raw), shape, BYTES)
        values[index] = bytes(raw[at : at + length])
        at += length
    if at != len(raw):
        raise bad_size(name, len(raw), shape, BYTES)
    return values


def binary_strings(values: list[str]) -> bytes:
    """BYTES elements as the binary extension sends them: each a 4-byte little-endian length, then
    its UTF-8 bytes (the inverse of `binary_values` for BYTES)."""
    encoded = [value.encode() for value in values]
    return b"".join(_LENGTH.pack(len(item)) + item for item in encoded)


def json_values(sent_as: str, name: str, datatype: str, data: Any) -> np.ndarray:
    """A tensor's JSON `data` (flat or nested) as numbers (null: NaN), booleans or strings; errors
    name the input (or v1 feature, `sent_as`) they come from."""
    if not isinstance(data, list):
        raise InvalidRequestError(f"{sent_as} {brief(name)} needs its values in 'data' (a list)")
    if datatype == BYTES:
        return np.fromiter(data, object, count=len(data))
    if datatype == BOOL:
        return _json_booleans(sent_as, name, data)
    try:
        # numpy reads null as NaN (a missing value), and a number written as a string as that number;
        # a number too large for float32 becomes inf, refused by name once the batch is assembled
        return np.array(data, np.float32 if datatype == "FP32" else np.float64)
    except (ValueError, TypeError, OverflowError) as e:
        raise InvalidRequestError(f"{sent_as} {brief(name)}: values must be numbers only ({e})") from e


def _json_booleans(sent_as: str, name: str, data: list[Any]) -> np.ndarray:
    """true/false (or 0 and 1, checked with the other values), null: NaN, a missing value."""
    refused = f"{sent_as} {brief(name)}: BOOL values must be true or false"
    try:
        values = np.array(data)
    except ValueError as e:
        raise InvalidRequestError(f"{refused} ({e})") from e
    if values.dtype.kind in "biuf" or not values.size:
        return values
    flat = values.ravel().tolist()
    if values.dtype != object or not all(v is None or isinstance(v, int | float) for v in flat):
        raise InvalidRequestError(refused)
    return np.array(flat, np.float64).reshape(values.shape)
