"""Tensor data types of the Open Inference Protocol and how they map to numpy and ONNX Runtime.

The protocol names types ``FP32``, ``INT64``…; ONNX Runtime names them ``tensor(float)``…; numpy
holds the data. This module is the one table between the three.
"""

from __future__ import annotations

import numpy as np

# ONNX Runtime type string → (protocol datatype, numpy dtype)
_ORT: dict[str, tuple[str, np.dtype[np.generic]]] = {
    "tensor(float)": ("FP32", np.dtype(np.float32)),
    "tensor(double)": ("FP64", np.dtype(np.float64)),
    "tensor(float16)": ("FP16", np.dtype(np.float16)),
    "tensor(int8)": ("INT8", np.dtype(np.int8)),
    "tensor(int16)": ("INT16", np.dtype(np.int16)),
    "tensor(int32)": ("INT32", np.dtype(np.int32)),
    "tensor(int64)": ("INT64", np.dtype(np.int64)),
    "tensor(uint8)": ("UINT8", np.dtype(np.uint8)),
    "tensor(uint16)": ("UINT16", np.dtype(np.uint16)),
    "tensor(uint32)": ("UINT32", np.dtype(np.uint32)),
    "tensor(uint64)": ("UINT64", np.dtype(np.uint64)),
    "tensor(bool)": ("BOOL", np.dtype(np.bool_)),
}
DATATYPE_TO_NUMPY: dict[str, np.dtype[np.generic]] = {dt: np_ for dt, np_ in _ORT.values()}
_NUMPY_TO_DATATYPE: dict[np.dtype[np.generic], str] = {np_: dt for dt, np_ in _ORT.values()}


def ort_type_to_datatype(ort_type: str) -> str:
    """``tensor(float)`` → ``FP32``; types the protocol layer cannot carry map to ``BYTES``."""
    return _ORT[ort_type][0] if ort_type in _ORT else "BYTES"


def ort_type_to_numpy(ort_type: str) -> np.dtype[np.generic] | None:
    entry = _ORT.get(ort_type)
    return entry[1] if entry else None


def numpy_to_datatype(dtype: np.dtype[np.generic]) -> str:
    return _NUMPY_TO_DATATYPE.get(dtype, "BYTES")
