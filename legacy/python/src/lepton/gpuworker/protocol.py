"""Open Inference Protocol v2 request decoding and response encoding (JSON + binary extension).

Tensors arrive as JSON ``data`` (flat or nested, row-major) or, with Triton's binary tensor data
extension, as raw little-endian bytes after a JSON header whose length is the
``Inference-Header-Content-Length`` header; each such input says its size in
``parameters.binary_data_size``. Outputs go back the same way when the request asks for it
(``parameters.binary_data`` per output or ``binary_data_output`` for all). Every malformed part
raises :class:`InvalidInput` saying which field is wrong and what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from lepton.gpuworker.tensors import DATATYPE_TO_NUMPY, numpy_to_datatype
from lepton.shared.errors import InvalidInput

HEADER_LENGTH = "inference-header-content-length"
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, tuple[str, np.ndarray]]  # name → (datatype, array)
    outputs: tuple[RequestedOutput, ...]  # empty = every output of the model
    binary_output: bool  # default for outputs not listed individually


def _fail(problem: str) -> InvalidInput:
    return InvalidInput(
        f"malformed inference request: {problem}; see the Open Inference Protocol v2 "
        "(KServe/Triton) request format"
    )


def parse_header_length(raw: str | None, body_size: int) -> int | None:
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError:
        raise _fail(f"Inference-Header-Content-Length {raw!r} is not a number") from None
    if not 0 < length <= body_size:
        raise _fail(
            f"Inference-Header-Content-Length {length} must be within 1..{body_size} "
            "(the body size)"
        )
    return length


def decode_request(body: bytes, header_length: int | None) -> InferRequest:
    """Parse an inference request body into named numpy arrays."""
    header = body if header_length is None else body[:header_length]
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as err:
        raise _fail(f"the body is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise _fail("the body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _fail("'inputs' must be a non-empty list of tensors")
    offset = 0
    inputs: dict[str, tuple[str, np.ndarray]] = {}
    for position, raw in enumerate(raw_inputs):
        name, datatype, shape, params = _tensor_header(raw, position)
        if name in inputs:
            raise _fail(f"input {name!r} appears twice")
        dtype = DATATYPE_TO_NUMPY.get(datatype)
        if dtype is None:
            raise _fail(
                f"input {name!r} has datatype {datatype!r}; supported: "
                f"{sorted(DATATYPE_TO_NUMPY)} (BYTES tensors are not served)"
            )
        count = math.prod(shape)
        size = params.get("binary_data_size")
        if size is not None:
            if header_length is None:
                raise _fail(
                    f"input {name!r} has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise _fail(f"input {name!r}: binary_data_size must be a whole number of bytes")
            if size != count * dtype.itemsize:
                raise _fail(
                    f"input {name!r}: binary_data_size {size} does not match shape {shape} of "
                    f"{datatype} ({count * dtype.itemsize} bytes)"
                )
            if offset + size > len(binary):
                raise _fail(
                    f"input {name!r}: the binary data ends after {len(binary) - offset} "
                    f"of {size} bytes"
                )
            chunk = binary[offset : offset + size]
            array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype, copy=True)
            offset += size
        else:
            if "data" not in raw:
                raise _fail(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
            array = _json_array(name, raw["data"], dtype, datatype, count)
        inputs[name] = (datatype, array.reshape(shape))
    if offset != len(binary):
        raise _fail(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    request_id = doc.get("id")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail("'parameters' must be an object")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        outputs=_requested_outputs(doc.get("outputs")),
        binary_output=bool(params.get("binary_data_output", False)),
    )


def _tensor_header(raw: Any, position: int) -> tuple[str, str, list[int], dict[str, Any]]:
    if not isinstance(raw, dict):
        raise _fail(f"inputs[{position}] must be an object with name, datatype, shape and data")
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str) or not name:
        raise _fail(f"inputs[{position}].name must be a non-empty string")
    if not isinstance(datatype, str):
        raise _fail(f"input {name!r}: datatype must be a string such as 'FP32'")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _fail(f"input {name!r}: shape must be a list of non-negative integers")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail(f"input {name!r}: parameters must be an object")
    return name, datatype, shape, params


def _json_array(
    name: str, data: Any, dtype: np.dtype[Any], datatype: str, count: int
) -> np.ndarray:
    if not isinstance(data, list):
        raise _fail(f"input {name!r}: data must be a list of {datatype} values")
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise _fail(
            f"input {name!r}: data must be a (flat or nested) list of {datatype} "
            "values of equal length"
        ) from None
    if array.size != count:
        raise _fail(f"input {name!r}: data has {array.size} values but the shape needs {count}")
    return array.reshape(-1)


def _requested_outputs(raw: Any) -> tuple[RequestedOutput, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("'outputs' must be a list of {name, parameters}")
    out: list[RequestedOutput] = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _fail(f"outputs[{position}] must be an object with a 'name'")
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise _fail(f"outputs[{position}].parameters must be an object")
        out.append(RequestedOutput(entry["name"], bool(params.get("binary_data", False))))
    return tuple(out)


def encode_response(
    *,
    model: str,
    version: str,
    request_id: str,
    outputs: Mapping[str, np.ndarray],
    order: Sequence[str],
    requested: Sequence[RequestedOutput],
    binary_output: bool,
) -> tuple[bytes, int | None]:
    """The response body and, if any output is binary, the JSON header's length."""
    wanted = requested or tuple(RequestedOutput(name, binary_output) for name in order)
    entries: list[dict[str, Any]] = []
    chunks: list[memoryview] = []
    for want in wanted:
        array = np.ascontiguousarray(outputs[want.name])
        entry: dict[str, Any] = {
            "name": want.name,
            "datatype": numpy_to_datatype(array.dtype),
            "shape": list(array.shape),
        }
        if want.binary:
            # Kept as a view of the array: the final join copies it once (tobytes() would be a
            # second copy of what can be a large tensor).
            little = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
            entry["parameters"] = {"binary_data_size": little.nbytes}
            chunks.append(little.data)
        else:
            flat = array.reshape(-1)
            entry["data"] = flat if flat.dtype != np.float16 else flat.astype(np.float32)
        entries.append(entry)
    header = orjson.dumps(
        {"model_name": model, "model_version": version, "id": request_id, "outputs": entries},
        option=_JSON_OPTIONS,
    )
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def error_body(message: str, code: str) -> bytes:
    return orjson.dumps({"error": message, "code": code})
