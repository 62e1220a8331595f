"""Lifecycle reports: a JSON document per stage and a PNG plot of its metrics per step.

``evaluation``, ``shadow`` and ``canary`` each get their own document (a minor version has all
three), and each carries the composite score ``P = w1·T + w2·R + w3·E`` of both versions under
``composite`` (DESIGN §5). Documents are strict JSON: NaN and infinities (an idle version, a p95
past the last histogram bucket) become ``null``, so any JSON reader can load them. The plot shows,
per step, the error rate and the p95 latency of candidate and production side by side with the
traffic weight, so a reader sees at which weight a regression appeared. Rendering uses
matplotlib's Agg backend (no display, safe in Functions and tests).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: must precede pyplot's import

import matplotlib.pyplot as plt

from lepton.shared.canary import json_safe
from lepton.shared.metrics import LATENCY_BUCKETS_MS, WindowRollup

REPORT_SCHEMA = 1


def bucket_percentile_ms(buckets: Sequence[int], q: float) -> float:
    """Upper bound (ms) of the histogram bucket holding the ``q``-th percentile; 0 if empty."""
    total = sum(buckets)
    if total == 0:
        return 0.0
    target = q / 100.0 * total
    running = 0
    for bound, count in zip(LATENCY_BUCKETS_MS, buckets, strict=True):
        running += count
        if running >= target:
            # The open last bucket has no upper bound; report the last finite one.
            return float(bound) if bound != float("inf") else float(LATENCY_BUCKETS_MS[-2])
    return float(LATENCY_BUCKETS_MS[-2])


def window_summary(rollup: WindowRollup | None) -> dict[str, Any]:
    """Requests, error rate and latency percentiles of one version over one window."""
    if rollup is None or rollup.requests == 0:
        return {"requests": 0, "errors": 0, "error_rate": 0.0, "p50_ms": 0.0, "p95_ms": 0.0}
    return {
        "requests": rollup.requests,
        "routed_requests": rollup.routed_requests,
        "errors": rollup.errors,
        "nonfinite": rollup.nonfinite,
        "error_rate": rollup.errors / rollup.requests,
        "p50_ms": bucket_percentile_ms(rollup.latency_buckets, 50),
        "p95_ms": bucket_percentile_ms(rollup.latency_buckets, 95),
    }


def stage_report(
    model: str, version: str, stage: str, *, outcome: str, reason: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The JSON document stored at ``reports/{model}/{version}/{stage}.json`` (strict JSON)."""
    document: dict[str, Any] = json_safe(
        {
            "schema": REPORT_SCHEMA,
            "model": model,
            "version": version,
            "stage": stage,
            "outcome": outcome,
            "reason": reason,
            **body,
        }
    )
    return document


def canary_plot_png(
    model: str, version: str, steps: Sequence[dict[str, Any]], *, stage: str = "canary"
) -> bytes:
    """PNG of error rate and p95 latency per step (candidate vs production) of one stage."""
    labels = [f"{s['step']}\n{s['weight_bp'] / 100:g}%" for s in steps]
    xs = list(range(len(steps)))

    def series(role: str, key: str) -> list[float]:
        return [float(s.get(role, {}).get(key) or 0.0) for s in steps]

    fig, (ax_err, ax_lat) = plt.subplots(1, 2, figsize=(10, 4), dpi=80)
    try:
        for role, marker in (("candidate", "o"), ("production", "s")):
            ax_err.plot(
                xs, [100 * v for v in series(role, "error_rate")], marker=marker, label=role
            )
            ax_lat.plot(xs, series(role, "p95_ms"), marker=marker, label=role)
        ax_err.set_title("error rate (%) per step")
        ax_lat.set_title("p95 latency (ms) per step")
        for ax in (ax_err, ax_lat):
            ax.set_xticks(xs, labels)
            ax.set_xlabel("step / candidate weight")
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle(f"{model} {version}: {stage}")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)
