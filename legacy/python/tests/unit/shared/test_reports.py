"""Report documents and the canary plot (matplotlib Agg)."""

from __future__ import annotations

import json
import math

from lepton.shared.metrics import LATENCY_BUCKETS_MS, WindowRollup, latency_bucket
from lepton.shared.reports import (
    bucket_percentile_ms,
    canary_plot_png,
    stage_report,
    window_summary,
)


def test_bucket_percentiles() -> None:
    buckets = [0] * len(LATENCY_BUCKETS_MS)
    buckets[latency_bucket(4.0)] = 90
    buckets[latency_bucket(180.0)] = 10
    assert bucket_percentile_ms(buckets, 50) == 5.0
    assert bucket_percentile_ms(buckets, 95) == 200.0
    assert bucket_percentile_ms([0] * len(LATENCY_BUCKETS_MS), 95) == 0.0


def test_window_summary() -> None:
    buckets = [0] * len(LATENCY_BUCKETS_MS)
    buckets[latency_bucket(2.0)] = 200
    rollup = WindowRollup(
        "m",
        "1.0.0",
        "r",
        0,
        1,
        requests=200,
        routed_requests=200,
        errors=4,
        latency_buckets=tuple(buckets),
    )
    summary = window_summary(rollup)
    assert (summary["error_rate"], summary["p95_ms"]) == (0.02, 2.0)
    assert window_summary(None)["requests"] == 0


def test_canary_plot_is_a_png_and_report_has_the_envelope() -> None:
    steps = [
        {
            "step": 1,
            "weight_bp": 500,
            "candidate": {"error_rate": 0.01, "p95_ms": 5.0},
            "production": {"error_rate": 0.01, "p95_ms": 5.0},
        },
        {
            "step": 2,
            "weight_bp": 10_000,
            "candidate": {"error_rate": 0.02, "p95_ms": 7.5},
            "production": {"error_rate": 0.01, "p95_ms": 5.0},
        },
    ]
    png = canary_plot_png("digits", "1.0.1", steps)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    report = stage_report(
        "digits", "1.0.1", "canary", outcome="promoted", reason="ok", body={"steps": steps}
    )
    assert report["schema"] == 1 and report["steps"] == steps and report["outcome"] == "promoted"


def test_report_is_strict_json_with_nan_and_inf_as_null() -> None:
    body = {"composite": {"candidate": {"P": math.nan, "T": math.inf}}, "steps": [(1, 2)]}
    report = stage_report("digits", "1.0.1", "shadow", outcome="passed", reason="ok", body=body)
    assert report["composite"] == {"candidate": {"P": None, "T": None}}
    assert json.loads(json.dumps(report, allow_nan=False))["steps"] == [[1, 2]]


def test_plot_tolerates_missing_numbers_and_names_its_stage() -> None:
    steps = [{"step": 0, "weight_bp": 0, "candidate": {"error_rate": None}, "production": {}}]
    png = canary_plot_png("digits", "1.1.0", steps, stage="shadow")
    assert png.startswith(b"\x89PNG")
