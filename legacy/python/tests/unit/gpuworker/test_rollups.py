"""Window rollups: aligned windows, every field filled, bounded paired samples, scores."""

from __future__ import annotations

import random

import numpy as np

from lepton.gpuworker.rollups import RollupRecorder
from lepton.gpuworker.scores import pick_score_output, row_scores, row_top1, score_histogram
from lepton.shared.metrics import MAX_PAIRED_SAMPLES, SCORE_BINS, latency_bucket


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_windows_are_aligned_and_fields_add_up() -> None:
    clock = Clock(1_000_007.5)
    rec = RollupRecorder("r1", 10, clock)
    scores = np.array([0.05, 0.95, 1.0])
    rec.record(
        "m",
        "1.0.0",
        routed=True,
        error=False,
        rows=3,
        latency_ms=4.0,
        compute_ms=1.5,
        scores=scores,
    )
    rec.record("m", "1.0.0", routed=False, error=True, nonfinite=True, rows=1, latency_ms=40.0)
    (row,) = rec.take_dirty()
    assert (row.window_start, row.window_seconds, row.replica) == (1_000_000, 10, "r1")
    assert (row.requests, row.routed_requests, row.errors, row.nonfinite, row.rows) == (
        2,
        1,
        1,
        1,
        4,
    )
    assert row.latency_sum_ms == 44.0 and row.compute_ms == 1.5
    assert row.latency_buckets[latency_bucket(4.0)] == 1
    assert row.latency_buckets[latency_bucket(40.0)] == 1 and sum(row.latency_buckets) == 2
    assert row.score_bins[0] == 1 and row.score_bins[SCORE_BINS - 1] == 2
    assert rec.take_dirty() == []  # nothing changed since
    clock.now += 10
    rec.record("m", "1.0.0", routed=True, error=False, latency_ms=1.0)
    (later,) = rec.take_dirty()
    assert later.window_start == 1_000_010 and later.requests == 1


def test_shadow_pairs_and_a_bounded_uniform_sample_of_latency_differences() -> None:
    rec = RollupRecorder("r1", 10, Clock(50.0), random.Random(1))
    n = MAX_PAIRED_SAMPLES * 4
    for i in range(n):
        rec.record_shadow_pair("m", "1.1.0", flipped=i % 4 == 0, latency_diff_ms=float(i))
    (row,) = rec.take_dirty()
    assert row.shadow_pairs == n and row.shadow_flips == n // 4
    assert len(row.paired_latency_diff_ms) == MAX_PAIRED_SAMPLES
    # A uniform sample of 0..n-1 has its mean near n/2, not at the first values kept.
    assert abs(np.mean(row.paired_latency_diff_ms) - n / 2) < n / 8


def test_score_output_choice_and_row_summaries() -> None:
    assert pick_score_output(["label", "probabilities"], [1, 2], [False, True]) == "probabilities"
    assert pick_score_output(["label", "logits"], [1, 2], [False, True]) == "logits"
    assert pick_score_output(["output"], [1], [True]) == "output"
    probs = np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)
    np.testing.assert_allclose(row_scores(probs), [0.9, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(row_top1(probs), [1, 0])
    values = np.array([-3.0, 0.25, 7.0])
    np.testing.assert_array_equal(row_scores(values), [0.0, 0.25, 1.0])
    hist = score_histogram(np.array([0.0, 0.1, 0.99, 1.0, np.nan]))
    assert hist.sum() == 4 and hist[0] == 1 and hist[1] == 1 and hist[-1] == 2
