"""Small ONNX graphs that break one thing on purpose, built with onnx.helper for the tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def fixed_batch(rows: int = 2, n_features: int = 4) -> bytes:
    """``output = input + 1`` with a fixed leading dimension of ``rows``."""
    one = numpy_helper.from_array(np.array([1.0], np.float32), "ONE")
    return _model(
        helper.make_graph(
            [helper.make_node("Add", ["input", "ONE"], ["output"])],
            "fixed",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [rows, n_features])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [rows, n_features])],
            [one],
        )
    )


def collapses_rows(n_features: int = 4) -> bytes:
    """Declares a symbolic leading output dim but sums over the rows: one row out per batch."""
    axes = numpy_helper.from_array(np.array([0], np.int64), "AXES")
    return _model(
        helper.make_graph(
            [helper.make_node("ReduceSum", ["input", "AXES"], ["output"], keepdims=1)],
            "collapse",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["M", n_features])],
            [axes],
        )
    )


def raises_above_one_row(n_features: int = 4) -> bytes:
    """Reshapes to [1, n]: fine for one row, ONNX Runtime raises for more."""
    shape = numpy_helper.from_array(np.array([1, n_features], np.int64), "SHAPE")
    return _model(
        helper.make_graph(
            [helper.make_node("Reshape", ["input", "SHAPE"], ["output"])],
            "raises",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_features])],
            [shape],
        )
    )
