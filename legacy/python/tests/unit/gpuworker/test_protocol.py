"""Open Inference Protocol decoding/encoding: JSON, binary extension, and malformed requests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import orjson
import pytest

from lepton.gpuworker.protocol import (
    RequestedOutput,
    decode_request,
    encode_response,
    parse_header_length,
)
from lepton.shared.errors import InvalidInput


def _body(*inputs: Mapping[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def test_json_tensors_flat_and_nested() -> None:
    flat = {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}
    nested = {"name": "y", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
    req = decode_request(_body(flat, nested, id="abc"), None)
    assert req.id == "abc"
    dt, x = req.inputs["x"]
    assert dt == "FP32" and x.dtype == np.float32 and x.tolist() == [[1, 2], [3, 4]]
    assert req.inputs["y"][1].dtype == np.int64
    assert req.outputs == () and req.binary_output is False


def test_binary_tensors_follow_the_json_header() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([True, False])
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": a.nbytes},
                },
                {
                    "name": "b",
                    "datatype": "BOOL",
                    "shape": [2],
                    "parameters": {"binary_data_size": b.nbytes},
                },
            ],
            "outputs": [{"name": "out", "parameters": {"binary_data": True}}],
        }
    )
    body = header + a.tobytes() + b.tobytes()
    req = decode_request(body, parse_header_length(str(len(header)), len(body)))
    assert np.array_equal(req.inputs["a"][1], a) and np.array_equal(req.inputs["b"][1], b)
    assert req.outputs == (RequestedOutput("out", True),)


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (_body(), None, "non-empty list"),
        (_body({"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}), None, "needs 2"),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}),
            None,
            "non-negative",
        ),
        (_body({"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1]}), None, "supported"),
        (_body({"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a"]}), None, "BYTES"),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}),
            None,
            "FP32 values",
        ),
        (_body({"name": "x", "datatype": "FP32", "shape": [1]}), None, "neither"),
        (_body({"datatype": "FP32", "shape": [1], "data": [1]}), None, "name"),
        (
            _body(
                {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},
                {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},
            ),
            None,
            "twice",
        ),
        (
            _body(
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4},
                }
            ),
            None,
            "no Inference-Header",
        ),
    ],
)
def test_malformed_requests_say_what_is_wrong(
    body: bytes, header_length: int | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_request(body, header_length)


def test_binary_sizes_must_match_and_be_fully_claimed() -> None:
    def req(size: int, payload: bytes) -> tuple[bytes, int]:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [2],
                        "parameters": {"binary_data_size": size},
                    }
                ]
            }
        )
        return header + payload, len(header)

    with pytest.raises(InvalidInput, match="does not match shape"):
        decode_request(*req(4, b"\0" * 4))
    with pytest.raises(InvalidInput, match="ends after 4"):
        decode_request(*req(8, b"\0" * 4))
    with pytest.raises(InvalidInput, match="not claimed"):
        decode_request(*req(8, b"\0" * 12))


@pytest.mark.parametrize("raw", ["abc", "0", "999999"])
def test_bad_header_length(raw: str) -> None:
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        parse_header_length(raw, 100)


def test_encode_json_and_binary_outputs() -> None:
    outputs: dict[str, np.ndarray] = {
        "p": np.array([[0.25, 0.75]], np.float32),
        "label": np.array([1], np.int64),
    }
    body, length = encode_response(
        model="m",
        version="1.0.0",
        request_id="r",
        outputs=outputs,
        order=("label", "p"),
        requested=(),
        binary_output=False,
    )
    assert length is None
    doc = orjson.loads(body)
    assert doc["model_version"] == "1.0.0" and doc["id"] == "r"
    assert [o["name"] for o in doc["outputs"]] == ["label", "p"]
    assert doc["outputs"][1] == {
        "name": "p",
        "datatype": "FP32",
        "shape": [1, 2],
        "data": [0.25, 0.75],
    }
    body, length = encode_response(
        model="m",
        version="1.0.0",
        request_id="r",
        outputs=outputs,
        order=("label", "p"),
        requested=(RequestedOutput("p", True),),
        binary_output=False,
    )
    assert length is not None
    doc = orjson.loads(body[:length])
    assert [o["name"] for o in doc["outputs"]] == ["p"]
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.array_equal(np.frombuffer(body[length:], np.float32), [0.25, 0.75])
