"""Offline evaluation of a model file on a dataset shard, shard merging and the evaluation gate.

A shard result keeps sufficient statistics rather than finished metrics (a confusion matrix, the
binary scores, sums of errors, per-batch latencies), so shards evaluated in parallel merge into
exactly the numbers one pass over the whole dataset would give. The gate compares candidate to
production on those numbers with the policy's tolerances, and :func:`evaluation_composite` scores
each version with the composite ``P = w1·T + w2·R + w3·E`` the canary reports use (DESIGN §5).
Pure numpy/scipy: no scikit-learn at runtime.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lepton.shared.canary import composite_from_parts
from lepton.shared.errors import InvalidDataset, InvalidModel
from lepton.shared.manifest import Task
from lepton.shared.policy import EvaluationGate
from lepton.shared.validation import session_for

BATCH_ROWS = 32


@dataclass(frozen=True)
class ShardResult:
    """Sufficient statistics of one model on one shard of a dataset."""

    task: Task
    rows: int
    confusion: tuple[tuple[int, ...], ...] = ()  # [true][pred], classification
    binary_scores: tuple[float, ...] = ()  # P(class 1), binary classification only
    binary_labels: tuple[int, ...] = ()
    sum_squared_error: float = 0.0
    sum_absolute_error: float = 0.0
    nonfinite: int = 0
    batch_latency_ms: tuple[float, ...] = ()
    batch_rows: tuple[int, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.value,
            "rows": self.rows,
            "confusion": [list(r) for r in self.confusion],
            "binary_scores": list(self.binary_scores),
            "binary_labels": list(self.binary_labels),
            "sum_squared_error": self.sum_squared_error,
            "sum_absolute_error": self.sum_absolute_error,
            "nonfinite": self.nonfinite,
            "batch_latency_ms": list(self.batch_latency_ms),
            "batch_rows": list(self.batch_rows),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardResult:
        return cls(
            task=Task(data["task"]),
            rows=int(data["rows"]),
            confusion=tuple(tuple(int(c) for c in r) for r in data["confusion"]),
            binary_scores=tuple(float(s) for s in data["binary_scores"]),
            binary_labels=tuple(int(v) for v in data["binary_labels"]),
            sum_squared_error=float(data["sum_squared_error"]),
            sum_absolute_error=float(data["sum_absolute_error"]),
            nonfinite=int(data["nonfinite"]),
            batch_latency_ms=tuple(float(v) for v in data["batch_latency_ms"]),
            batch_rows=tuple(int(v) for v in data["batch_rows"]),
        )


def shard_bounds(rows: int, shard: int, shards: int) -> tuple[int, int]:
    """Row range ``[lo, hi)`` of shard ``shard`` out of ``shards`` (sizes differ by at most 1)."""
    if not 0 <= shard < shards:
        raise InvalidDataset(f"shard {shard} is outside 0..{shards - 1}")
    return rows * shard // shards, rows * (shard + 1) // shards


def evaluate_shard(
    path: Path, x: np.ndarray, y: np.ndarray, *, task: Task, shard: int, shards: int
) -> ShardResult:
    """Run the model at ``path`` on shard ``shard`` of ``(x, y)`` and collect its statistics."""
    lo, hi = shard_bounds(len(x), shard, shards)
    xs, ys = x[lo:hi], y[lo:hi]
    session = session_for(path)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidModel(
            f"evaluation feeds one input array (the dataset's X) but the model has {len(inputs)} "
            "inputs; evaluate multi-input models outside Lepton"
        )
    feed_name = inputs[0].name
    dtype = np.float32 if "float)" in str(inputs[0].type) else None
    outputs: list[list[np.ndarray]] = []
    latencies: list[float] = []
    batch_rows: list[int] = []
    for start in range(0, len(xs), BATCH_ROWS):
        batch = xs[start : start + BATCH_ROWS]
        batch = batch.astype(dtype) if dtype is not None else batch
        began = time.perf_counter()
        try:
            result = session.run(None, {feed_name: batch})
        except Exception as err:
            raise InvalidDataset(
                f"the model cannot run on the dataset's X (shape {list(xs.shape)}): {err}"
            ) from None
        latencies.append((time.perf_counter() - began) * 1000.0)
        batch_rows.append(len(batch))
        outputs.append([np.asarray(o) for o in result])
    names = [o.name for o in session.get_outputs()]
    merged = [np.concatenate([b[i] for b in outputs]) for i in range(len(names))] if outputs else []
    if task is Task.REGRESSION:
        return _regression(merged, ys, latencies, batch_rows)
    return _classification(merged, ys, latencies, batch_rows)


def _regression(
    outputs: list[np.ndarray], y: np.ndarray, latencies: list[float], batch_rows: list[int]
) -> ShardResult:
    pred = np.asarray(outputs[0], dtype=np.float64).reshape(len(y), -1)[:, 0] if len(y) else y
    truth = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0] if len(y) else y
    finite = np.isfinite(pred)
    err = pred[finite] - truth[finite]
    return ShardResult(
        Task.REGRESSION,
        len(y),
        sum_squared_error=float(np.sum(err**2)),
        sum_absolute_error=float(np.sum(np.abs(err))),
        nonfinite=int(np.sum(~finite)),
        batch_latency_ms=tuple(latencies),
        batch_rows=tuple(batch_rows),
    )


def _classification(
    outputs: list[np.ndarray], y: np.ndarray, latencies: list[float], batch_rows: list[int]
) -> ShardResult:
    labels = next((o for o in outputs if o.ndim == 1 and np.issubdtype(o.dtype, np.integer)), None)
    probs = next((o for o in outputs if o.ndim == 2 and np.issubdtype(o.dtype, np.floating)), None)
    if labels is None and probs is None:
        raise InvalidModel(
            "classification needs an integer label output [N] or a score output [N, classes]; "
            "set task to 'regression' in lepton.json if this is a regressor"
        )
    nonfinite = 0
    if probs is not None:
        bad = ~np.all(np.isfinite(probs), axis=1)
        nonfinite = int(np.sum(bad))
    if labels is not None:
        pred = labels
    else:
        assert probs is not None
        pred = np.argmax(np.nan_to_num(probs, nan=-np.inf), axis=1)
    truth = np.asarray(y).astype(np.int64)
    n_classes = int(max(truth.max(initial=0), pred.max(initial=0)) + 1)
    if probs is not None:
        n_classes = max(n_classes, probs.shape[1])
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, pred.astype(np.int64)), 1)
    scores: tuple[float, ...] = ()
    binary: tuple[int, ...] = ()
    if probs is not None and probs.shape[1] == 2:
        scores = tuple(float(s) for s in np.nan_to_num(probs[:, 1], nan=0.0))
        binary = tuple(int(t) for t in truth)
    return ShardResult(
        Task.CLASSIFICATION,
        len(y),
        confusion=tuple(tuple(int(c) for c in r) for r in confusion),
        binary_scores=scores,
        binary_labels=binary,
        nonfinite=nonfinite,
        batch_latency_ms=tuple(latencies),
        batch_rows=tuple(batch_rows),
    )


def merge_shards(shards: list[ShardResult]) -> ShardResult:
    """Sum shard statistics; confusion matrices of different widths are padded."""
    if not shards:
        raise InvalidDataset("no shard results to merge: the dataset has no rows")
    task = shards[0].task
    width = max((len(s.confusion) for s in shards), default=0)
    confusion = np.zeros((width, width), dtype=np.int64)
    for s in shards:
        if s.confusion:
            m = np.asarray(s.confusion)
            confusion[: m.shape[0], : m.shape[1]] += m
    return ShardResult(
        task=task,
        rows=sum(s.rows for s in shards),
        confusion=tuple(tuple(int(c) for c in r) for r in confusion),
        binary_scores=tuple(v for s in shards for v in s.binary_scores),
        binary_labels=tuple(v for s in shards for v in s.binary_labels),
        sum_squared_error=sum(s.sum_squared_error for s in shards),
        sum_absolute_error=sum(s.sum_absolute_error for s in shards),
        nonfinite=sum(s.nonfinite for s in shards),
        batch_latency_ms=tuple(v for s in shards for v in s.batch_latency_ms),
        batch_rows=tuple(v for s in shards for v in s.batch_rows),
    )


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Binary ROC-AUC via the Mann-Whitney U statistic; None when one class is absent."""
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def summarize(result: ShardResult) -> dict[str, Any]:
    """Finished metrics of a (merged) result: quality, latency percentiles and throughput."""
    out: dict[str, Any] = {
        "task": result.task.value,
        "rows": result.rows,
        "nonfinite": result.nonfinite,
    }
    lat = np.asarray(result.batch_latency_ms, dtype=np.float64)
    total_ms = float(lat.sum())
    out["latency_ms"] = {
        f"p{q}": float(np.percentile(lat, q)) if lat.size else 0.0 for q in (50, 95, 99)
    }
    # The fastest *full* batch: a shard's short last batch (14 rows instead of 32, say) is
    # faster for every model, and would let a model 300x slower per row pass the latency gate.
    rows = np.asarray(result.batch_rows, dtype=np.int64)
    full = lat[rows == rows.max()] if rows.size == lat.size and rows.size else lat
    out["latency_ms"]["min"] = float(full.min()) if full.size else 0.0
    out["throughput_rows_per_s"] = result.rows / (total_ms / 1000.0) if total_ms > 0 else 0.0
    if result.task is Task.REGRESSION:
        n = max(result.rows - result.nonfinite, 1)
        out["mse"] = result.sum_squared_error / n
        out["mae"] = result.sum_absolute_error / n
        return out
    cm = np.asarray(result.confusion, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = support > 0  # macro over classes present in the labels, as scikit-learn warns
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    out["accuracy"] = float(tp.sum() / total) if total else 0.0
    out["precision_macro"] = float(precision[present].mean()) if present.any() else 0.0
    out["recall_macro"] = float(recall[present].mean()) if present.any() else 0.0
    out["f1_macro"] = float(f1[present].mean()) if present.any() else 0.0
    if result.binary_scores:
        out["roc_auc"] = roc_auc(np.asarray(result.binary_scores), np.asarray(result.binary_labels))
    return out


def evaluation_composite(
    result: ShardResult, weights: tuple[float, float, float]
) -> dict[str, float]:
    """``P = w1·T + w2·R + w3·E`` of one version on the evaluation dataset.

    The same formula and scales as live traffic (:func:`lepton.shared.canary.composite_score`),
    from what an offline run measures: ``T`` from the p95 batch latency (``BATCH_ROWS`` rows per
    batch, the unit a worker's batcher runs too), ``R`` from ONNX Runtime time per 1,000 rows and
    ``E`` from the rows with non-finite outputs (the offline failed request; wrong answers are
    what accuracy measures). Both versions' shards share the CPUs, so compare the scores within
    one report rather than across reports. Parts are NaN for a dataset without rows.
    """
    lat = np.asarray(result.batch_latency_ms, dtype=np.float64)
    p95 = float(np.percentile(lat, 95)) if lat.size else math.nan
    per_1k = float(lat.sum()) / result.rows * 1000.0 if result.rows else math.nan
    error_rate = result.nonfinite / result.rows if result.rows else math.nan
    return composite_from_parts(p95, per_1k, error_rate, weights=weights)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "evaluation gate passed"

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), "reason": self.reason}


def gate_evaluation(
    candidate: dict[str, Any], production: dict[str, Any] | None, gate: EvaluationGate
) -> GateResult:
    """Compare candidate to production summaries with the policy's tolerances."""
    reasons: list[str] = []
    if candidate["nonfinite"]:
        reasons.append(f"candidate produced non-finite outputs on {candidate['nonfinite']} rows")
    if production is None:
        return GateResult(not reasons, tuple(reasons))
    if candidate["task"] == Task.CLASSIFICATION.value:
        drop = production["accuracy"] - candidate["accuracy"]
        if drop > gate.max_accuracy_drop:
            reasons.append(
                f"accuracy regressed from {production['accuracy']:.4f} to "
                f"{candidate['accuracy']:.4f} (drop {drop:.4f} > {gate.max_accuracy_drop})"
            )
        f1_drop = production["f1_macro"] - candidate["f1_macro"]
        if f1_drop > gate.max_f1_drop:
            reasons.append(
                f"macro F1 regressed from {production['f1_macro']:.4f} to "
                f"{candidate['f1_macro']:.4f} (drop {f1_drop:.4f} > {gate.max_f1_drop})"
            )
    else:
        limit = production["mse"] * (1 + gate.max_mse_increase)
        if candidate["mse"] > limit:
            reasons.append(
                f"MSE rose from {production['mse']:.6g} to {candidate['mse']:.6g} "
                f"(more than {gate.max_mse_increase:.0%})"
            )
    # Shards of both versions run in parallel on shared CPUs, so tail latencies here measure
    # contention as much as the model; the fastest batch is the noise-free estimate of what a
    # version intrinsically costs. Tail latency under real load is the canary's job (§5).
    prod_ms, cand_ms = production["latency_ms"]["min"], candidate["latency_ms"]["min"]
    ratio = cand_ms / prod_ms if prod_ms > 0 else 1.0
    if ratio > gate.max_latency_ratio and cand_ms - prod_ms > gate.min_latency_delta_ms:
        reasons.append(
            f"batch latency rose from {prod_ms:.3f} ms to {cand_ms:.3f} ms (fastest batch, "
            f"ratio {ratio:.1f} > {gate.max_latency_ratio})"
        )
    return GateResult(not reasons, tuple(reasons))
