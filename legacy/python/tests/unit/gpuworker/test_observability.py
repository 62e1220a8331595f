"""Prometheus exposition of the worker's own counters and histograms."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lepton.gpuworker.batcher import BatchInfo
from lepton.gpuworker.observability import WorkerMetrics


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counts_and_cumulative_histograms_per_version() -> None:
    m = WorkerMetrics("r1", "CPUExecutionProvider")
    for seconds in (0.0004, 0.003, 0.003, 7.0):
        m.request("digits", "1.0.0", "ok", seconds)
    m.request("digits", "1.1.0", "error", 0.01)
    m.batch("digits", "1.0.0", BatchInfo(items=3, rows=5, queue_s=(0.0, 0.0015, 0.0015)))
    m.compute("digits", "1.0.0", 0.25)
    m.ready.labels("digits", "1.0.0").set(1)
    s = _samples(m)
    v1 = (("model", "digits"), ("version", "1.0.0"))
    assert s[("lepton_worker_requests_total", (*v1[:1], ("outcome", "ok"), v1[1]))] == 4
    assert (
        s[
            (
                "lepton_worker_requests_total",
                (("model", "digits"), ("outcome", "error"), ("version", "1.1.0")),
            )
        ]
        == 1
    )
    latency = "lepton_worker_request_duration_seconds"
    assert s[(f"{latency}_bucket", (("le", "0.0005"), *v1))] == 1
    assert s[(f"{latency}_bucket", (("le", "0.005"), *v1))] == 3
    assert s[(f"{latency}_bucket", (("le", "5.0"), *v1))] == 3
    assert s[(f"{latency}_bucket", (("le", "+Inf"), *v1))] == 4
    assert s[(f"{latency}_count", v1)] == 4
    assert abs(s[(f"{latency}_sum", v1)] - 7.0064) < 1e-9
    assert s[("lepton_worker_batch_rows_bucket", (("le", "4.0"), *v1))] == 0
    assert s[("lepton_worker_batch_rows_bucket", (("le", "8.0"), *v1))] == 1
    assert s[("lepton_worker_queue_seconds_bucket", (("le", "0.002"), *v1))] == 3
    assert s[("lepton_worker_compute_seconds_total", v1)] == 0.25
    assert s[("lepton_worker_version_ready", v1)] == 1
    assert s[("lepton_worker_info", (("provider", "CPUExecutionProvider"), ("replica", "r1")))] == 1
