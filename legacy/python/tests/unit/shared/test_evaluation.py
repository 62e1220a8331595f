"""Offline evaluation on real ONNX models: shard statistics, exact merging, metrics and the gate."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from lepton.dev import sample_models
from lepton.shared.canary import composite_from_parts
from lepton.shared.errors import InvalidDataset
from lepton.shared.evaluation import (
    ShardResult,
    evaluate_shard,
    evaluation_composite,
    gate_evaluation,
    merge_shards,
    roc_auc,
    shard_bounds,
    summarize,
)
from lepton.shared.manifest import Task
from lepton.shared.policy import EvaluationGate


@pytest.fixture(scope="module")
def digits() -> tuple[sample_models.Dataset, sample_models.Dataset]:
    return sample_models.digits()


def model_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"m{len(data)}.onnx"
    path.write_bytes(data)
    return path


def test_shard_bounds_cover_every_row_once() -> None:
    bounds = [shard_bounds(10, i, 3) for i in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(InvalidDataset):
        shard_bounds(10, 3, 3)


def test_sharded_evaluation_merges_to_the_single_pass_result(tmp_path: Path, digits: Any) -> None:
    train, test = digits
    path = model_file(tmp_path, sample_models.better_digits(train))
    whole = evaluate_shard(path, test.x, test.y, task=Task.CLASSIFICATION, shard=0, shards=1)
    parts = [
        evaluate_shard(path, test.x, test.y, task=Task.CLASSIFICATION, shard=i, shards=3)
        for i in range(3)
    ]
    merged = merge_shards([ShardResult.from_json(p.to_json()) for p in parts])
    assert merged.confusion == whole.confusion and merged.rows == len(test.y)
    summary = summarize(merged)
    # Independent check with numpy on the same ONNX model's predictions.
    expected = np.trace(np.asarray(whole.confusion)) / len(test.y)
    assert summary["accuracy"] == pytest.approx(expected)
    assert summary["accuracy"] > 0.9
    assert 0 < summary["f1_macro"] <= 1 and 0 < summary["precision_macro"] <= 1
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    assert summary["throughput_rows_per_s"] > 0


def test_macro_metrics_match_scikit_learn(tmp_path: Path, digits: Any) -> None:
    train, test = digits
    path = model_file(tmp_path, sample_models.linear_digits(train))
    summary = summarize(
        evaluate_shard(path, test.x, test.y, task=Task.CLASSIFICATION, shard=0, shards=1)
    )
    pred = ort.InferenceSession(str(path)).run(["label"], {"input": test.x})[0]
    assert summary["f1_macro"] == pytest.approx(f1_score(test.y, pred, average="macro"))
    assert summary["precision_macro"] == pytest.approx(
        precision_score(test.y, pred, average="macro", zero_division=0)
    )
    assert summary["recall_macro"] == pytest.approx(recall_score(test.y, pred, average="macro"))


def test_roc_auc_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(labels * 0.3 + rng.uniform(size=200), 2)  # ties included
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc(scores, np.zeros(200, np.int64)) is None


def test_regression_metrics(tmp_path: Path) -> None:
    path = model_file(tmp_path, sample_models.scaled_identity(2.0, n_features=1))
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10, dtype=np.float64) * 2 + 1  # every prediction is off by exactly 1
    summary = summarize(evaluate_shard(path, x, y, task=Task.REGRESSION, shard=0, shards=2))
    assert (summary["mse"], summary["mae"], summary["rows"]) == (1.0, 1.0, 5)


def test_model_that_cannot_read_the_dataset_is_a_clear_error(tmp_path: Path, digits: Any) -> None:
    _, test = digits
    path = model_file(tmp_path, sample_models.scaled_identity(1.0, n_features=4))
    with pytest.raises(InvalidDataset, match="cannot run on the dataset's X"):
        evaluate_shard(path, test.x, test.y, task=Task.REGRESSION, shard=0, shards=1)


def binary_model() -> bytes:
    w = numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["z"]),
            helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
        ],
        "binary",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_binary_classifier_gets_roc_auc(tmp_path: Path) -> None:
    x = np.linspace(-2, 2, 40, dtype=np.float32).reshape(40, 1)
    y = (x[:, 0] < 0).astype(np.int64)  # class 1 when the score for class 1 is high
    summary = summarize(
        evaluate_shard(
            model_file(tmp_path, binary_model()), x, y, task=Task.CLASSIFICATION, shard=0, shards=1
        )
    )
    assert summary["roc_auc"] == pytest.approx(1.0)
    assert summary["accuracy"] == pytest.approx(1.0)


def summary(accuracy: float, f1: float, fastest_ms: float, nonfinite: int = 0) -> dict[str, Any]:
    return {
        "task": "classification",
        "accuracy": accuracy,
        "f1_macro": f1,
        "nonfinite": nonfinite,
        "latency_ms": {"min": fastest_ms, "p95": fastest_ms},
    }


def test_gate() -> None:
    gate = EvaluationGate()
    prod = summary(0.95, 0.95, 1.0)
    assert gate_evaluation(summary(0.945, 0.94, 1.2), prod, gate).passed
    worse = gate_evaluation(summary(0.90, 0.95, 1.0), prod, gate)
    assert not worse.passed and "accuracy regressed from 0.9500 to 0.9000" in worse.reason
    slow = gate_evaluation(summary(0.95, 0.95, 12.0), prod, gate)
    assert not slow.passed and "batch latency rose from 1.000 ms to 12.000 ms" in slow.reason
    # A large ratio on sub-millisecond noise is not a regression.
    assert gate_evaluation(summary(0.95, 0.95, 0.5), summary(0.95, 0.95, 0.1), gate).passed
    nan = gate_evaluation(summary(0.95, 0.95, 1.0, nonfinite=3), None, gate)
    assert not nan.passed and "non-finite outputs on 3 rows" in nan.reason
    assert gate_evaluation(summary(0.5, 0.5, 9.0), None, gate).passed  # first version


def test_the_latency_gate_reads_full_batches_not_a_shards_short_tail() -> None:
    # Three full 32-row batches at 12 ms and a 2-row tail at 0.8 ms: the tail says nothing
    # about the model's cost, and must not make a 12x slower model look as fast as production.
    result = ShardResult(
        Task.CLASSIFICATION,
        98,
        confusion=((98,),),
        batch_latency_ms=(12.0, 12.5, 13.0, 0.8),
        batch_rows=(32, 32, 32, 2),
    )
    assert summarize(result)["latency_ms"]["min"] == 12.0
    slow = gate_evaluation(summarize(result), summary(0.95, 0.95, 1.0), EvaluationGate())
    assert not slow.passed and "batch latency rose from 1.000 ms to 12.000 ms" in slow.reason


def test_the_slow_demo_model_fails_the_latency_gate_on_real_shards(
    tmp_path: Path, digits: Any
) -> None:
    train, test = digits
    summaries = []
    for data in (sample_models.better_digits(train), sample_models.slow_digits(train)):
        path = model_file(tmp_path, data)
        # Two shards, as the demo's policy runs it: each ends with a short batch.
        shards = [
            evaluate_shard(path, test.x, test.y, task=Task.CLASSIFICATION, shard=i, shards=2)
            for i in range(2)
        ]
        assert {r for s in shards for r in s.batch_rows} != {32}  # the short tails are there
        summaries.append(summarize(merge_shards(shards)))
    gate = gate_evaluation(summaries[1], summaries[0], EvaluationGate())
    assert not gate.passed and "batch latency rose" in gate.reason


def test_evaluation_composite_by_hand() -> None:
    result = ShardResult(
        Task.CLASSIFICATION,
        64,
        nonfinite=2,
        batch_latency_ms=(10.0, 30.0),
        batch_rows=(32, 32),
    )
    score = evaluation_composite(result, (0.5, 0.2, 0.3))
    # p95 of (10, 30) = 29 ms → T = 0.29; 40 ms / 64 rows · 1000 = 625 ms per 1k → R = 0.625;
    # 2 of 64 rows non-finite → E = 3.125; the same formula the canary reports use.
    assert score == composite_from_parts(29.0, 625.0, 2 / 64, weights=(0.5, 0.2, 0.3))
    assert score["P"] == pytest.approx(0.5 * 0.29 + 0.2 * 0.625 + 0.3 * 3.125)
    assert math.isnan(evaluation_composite(ShardResult(Task.REGRESSION, 0), (1, 0, 0))["P"])


def test_evaluation_composite_ranks_a_nan_emitting_model_worse(tmp_path: Path, digits: Any) -> None:
    train, test = digits
    good = evaluate_shard(
        model_file(tmp_path, sample_models.better_digits(train)), test.x, test.y,
        task=Task.CLASSIFICATION, shard=0, shards=1,
    )  # fmt: skip
    weights = (0.5, 0.2, 0.3)
    clean = evaluation_composite(good, weights)
    assert clean["E"] == 0 and clean["P"] > 0
    broken = replace(good, nonfinite=good.rows // 10)
    assert evaluation_composite(broken, weights)["P"] > clean["P"]
