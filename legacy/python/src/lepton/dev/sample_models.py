"""Real ONNX models and datasets generated on the spot, for the demo, tests and benchmarks.

Everything here is built from scikit-learn's bundled digits dataset and ``onnx.helper``; nothing is
downloaded. Classifiers share one signature, ``input`` float32 [N, 64] → ``label`` int64 [N] and
``probabilities`` float32 [N, 10], so they can be canaried against each other; the variants below
each break one thing on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
N_FEATURES = 64
N_CLASSES = 10
# Pixel intensities in scikit-learn's digits dataset lie in 0..16; the demo's "unseen slice"
# sends values above this range.
FEATURE_MAX = 16.0


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # float32 [N, 64]
    y: np.ndarray  # int64 [N]


def digits(seed: int = 0) -> tuple[Dataset, Dataset]:
    """Scikit-learn's digits split into (train, test), shuffled with ``seed``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(len(x) * 0.7)
    return Dataset(x[:cut], y[:cut]), Dataset(x[cut:], y[cut:])


def _fit_logistic(train: Dataset, c: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(train.x / FEATURE_MAX, train.y)
    # Fold the input scaling into the weights so the graph takes raw pixel values.
    weights = (clf.coef_.T / FEATURE_MAX).astype(np.float32)
    return weights, clf.intercept_.astype(np.float32)


def _classifier_graph(
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    n_features: int = N_FEATURES,
    nan_above: float | None = None,
    slow_rounds: int = 0,
    name: str = "digits",
) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")]
    nodes = [
        helper.make_node("Gemm", ["input", "W", "B"], ["logits0"]),
    ]
    logits = "logits0"
    if slow_rounds:
        # A branch of dense matmuls whose result is multiplied by zero: the prediction is the
        # same, the compute is not (ONNX Runtime does not fold x*0 for floats because of NaN).
        rng = np.random.default_rng(1)
        width = 512
        inits.append(
            numpy_helper.from_array(
                rng.standard_normal((n_features, width)).astype(np.float32) * 0.01, "R0"
            )
        )
        inits.append(
            numpy_helper.from_array(
                rng.standard_normal((width, width)).astype(np.float32) * 0.01, "RW"
            )
        )
        inits.append(numpy_helper.from_array(np.zeros((1,), np.float32), "ZERO"))
        nodes.append(helper.make_node("MatMul", ["input", "R0"], ["slow0"]))
        for i in range(slow_rounds):
            nodes.append(helper.make_node("MatMul", [f"slow{i}", "RW"], [f"slow{i + 1}"]))
        nodes.append(
            helper.make_node("ReduceSum", [f"slow{slow_rounds}"], ["slow_sum"], keepdims=1)
        )
        nodes.append(helper.make_node("Mul", ["slow_sum", "ZERO"], ["slow_zero"]))
        nodes.append(helper.make_node("Add", [logits, "slow_zero"], ["logits1"]))
        logits = "logits1"
    nodes.append(helper.make_node("Softmax", [logits], ["probs0"], axis=1))
    probs = "probs0"
    if nan_above is not None:
        # Inputs outside the training range yield NaN: the failure offline evaluation misses.
        inits.append(numpy_helper.from_array(np.array([nan_above], np.float32), "LIMIT"))
        inits.append(numpy_helper.from_array(np.array([np.nan], np.float32), "NAN"))
        nodes += [
            helper.make_node("ReduceMax", ["input"], ["row_max"], axes=[1], keepdims=1),
            helper.make_node("Greater", ["row_max", "LIMIT"], ["out_of_range"]),
            helper.make_node("Where", ["out_of_range", "NAN", probs], ["probs1"]),
        ]
        probs = "probs1"
    nodes += [
        helper.make_node("Identity", [probs], ["probabilities"]),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", N_CLASSES]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _to_bytes(model: onnx.ModelProto) -> bytes:
    # onnx ships no stubs for protobuf's SerializeToString, so mypy sees Any.
    return bytes(model.SerializeToString())


def linear_digits(train: Dataset) -> bytes:
    """A deliberately under-fitted linear classifier (strong regularisation)."""
    w, b = _fit_logistic(train, c=0.002, max_iter=200)
    return _to_bytes(_classifier_graph(w, b, name="linear"))


def better_digits(train: Dataset) -> bytes:
    """A better-fitted linear classifier with the same signature."""
    w, b = _fit_logistic(train, c=1.0, max_iter=2000)
    return _to_bytes(_classifier_graph(w, b, name="better"))


def broken_signature_digits(train: Dataset) -> bytes:
    """Takes 32 features instead of 64: incompatible with the production signature."""
    w, b = _fit_logistic(Dataset(train.x[:, :32], train.y), c=1.0, max_iter=500)
    return _to_bytes(_classifier_graph(w, b, n_features=32, name="broken"))


def nan_on_unseen_digits(train: Dataset) -> bytes:
    """Accurate on the dataset, NaN when any pixel exceeds the training range."""
    w, b = _fit_logistic(train, c=1.0, max_iter=2000)
    return _to_bytes(_classifier_graph(w, b, nan_above=FEATURE_MAX, name="nan_unseen"))


def slow_digits(train: Dataset, rounds: int = 24) -> bytes:
    """As accurate as :func:`better_digits`, with ``rounds`` extra 512x512 matmuls per row."""
    w, b = _fit_logistic(train, c=1.0, max_iter=2000)
    return _to_bytes(_classifier_graph(w, b, slow_rounds=rounds, name="slow"))


def always_nan(n_features: int = 4) -> bytes:
    """Emits NaN for every input: ``output`` = input · NaN."""
    nan = numpy_helper.from_array(np.array([np.nan], np.float32), "NAN")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "NAN"], ["output"])],
        "always_nan",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_features])],
        [nan],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return _to_bytes(model)


def scaled_identity(factor: float, n_features: int = 4) -> bytes:
    """``output = input · factor``: a tiny model whose answer tells which version served it."""
    k = numpy_helper.from_array(np.array([factor], np.float32), "K")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "K"], ["output"])],
        f"scale_{factor:g}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_features])],
        [k],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return _to_bytes(model)


def mlp(width: int = 1024, depth: int = 3, n_features: int = 256, seed: int = 0) -> bytes:
    """A compute-bound MLP (``depth`` Gemm+Relu layers of ``width``) with a symbolic batch."""
    rng = np.random.default_rng(seed)
    inits = []
    nodes = []
    prev, prev_width = "input", n_features
    for i in range(depth):
        w = (rng.standard_normal((prev_width, width)) / np.sqrt(prev_width)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"W{i}"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"B{i}"),
        ]
        nodes += [
            helper.make_node("Gemm", [prev, f"W{i}", f"B{i}"], [f"h{i}"]),
            helper.make_node("Relu", [f"h{i}"], [f"a{i}"]),
        ]
        prev, prev_width = f"a{i}", width
    nodes.append(helper.make_node("Identity", [prev], ["output"]))
    graph = helper.make_graph(
        nodes,
        f"mlp_{width}x{depth}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return _to_bytes(model)
