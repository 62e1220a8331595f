"""Prometheus and OpenTelemetry instruments of the worker, per model and version.

Per-request counts and histograms are plain Python numbers updated on the event-loop thread (the
only writer, so no lock) and turned into Prometheus metric families when ``/metrics`` is scraped;
``prometheus_client``'s own instruments take a lock per update, which cost more than the rest of
the bookkeeping of a small request. Rare events (readiness, dropped shadows) use the standard
instruments. Request counts and latencies also go to OpenTelemetry when an exporter (Azure
Monitor) is configured. Metrics live in a registry per app: tests run several apps in one process.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lepton.gpuworker.batcher import BatchInfo
from lepton.shared.telemetry import meter

_LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OUTCOMES = ("ok", "error", "nonfinite", "invalid")


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, last = +Inf
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


@dataclass
class _VersionStats:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    latency: _Histogram = field(default_factory=lambda: _Histogram(_LATENCY_BUCKETS_S))
    queue: _Histogram = field(default_factory=lambda: _Histogram(_LATENCY_BUCKETS_S))
    batch: _Histogram = field(default_factory=lambda: _Histogram(_BATCH_BUCKETS))
    compute_s: float = 0.0


class _StatsCollector(Collector):
    def __init__(self, stats: dict[tuple[str, str], _VersionStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lepton_worker_requests", "Inference requests by outcome",
            labels=["model", "version", "outcome"],
        )  # fmt: skip
        compute = CounterMetricFamily(
            "lepton_worker_compute_seconds", "ONNX Runtime time", labels=["model", "version"]
        )
        families = {
            "latency": HistogramMetricFamily(
                "lepton_worker_request_duration_seconds", "Time in the worker per request",
                labels=["model", "version"],
            ),
            "queue": HistogramMetricFamily(
                "lepton_worker_queue_seconds", "Time a request waited for its batch",
                labels=["model", "version"],
            ),
            "batch": HistogramMetricFamily(
                "lepton_worker_batch_rows", "Rows per batch run", labels=["model", "version"]
            ),
        }  # fmt: skip
        for (model, version), s in list(self._stats.items()):
            for outcome, count in s.outcomes.items():
                requests.add_metric([model, version, outcome], count)
            compute.add_metric([model, version], s.compute_s)
            for name, family in families.items():
                hist: _Histogram = getattr(s, name)
                family.add_metric([model, version], hist.cumulative(), hist.total)
        yield requests
        yield compute
        yield from families.values()


class WorkerMetrics:
    """Counters and histograms exported by one worker."""

    def __init__(self, replica: str, provider: str, *, opentelemetry: bool = False) -> None:
        self.registry = CollectorRegistry()
        self._stats: dict[tuple[str, str], _VersionStats] = {}
        self.registry.register(_StatsCollector(self._stats))
        self.ready = Gauge(
            "lepton_worker_version_ready", "1 when the version is loaded and warm",
            ["model", "version"], registry=self.registry,
        )  # fmt: skip
        self.shadow_dropped = Counter(
            "lepton_worker_shadow_dropped", "Shadow copies skipped because too many were running",
            ["model"], registry=self.registry,
        )  # fmt: skip
        info = Gauge(
            "lepton_worker_info", "Replica and execution provider", ["replica", "provider"],
            registry=self.registry,
        )  # fmt: skip
        info.labels(replica, provider).set(1)
        # OpenTelemetry costs microseconds per request even with nowhere to export to, so it is
        # only fed when an exporter (Azure Monitor) is configured.
        self._otel = opentelemetry
        otel = meter("lepton.gpuworker")
        self._otel_requests = otel.create_counter("lepton.worker.requests")
        self._otel_latency = otel.create_histogram("lepton.worker.request_duration", unit="ms")

    def _for(self, model: str, version: str) -> _VersionStats:
        stats = self._stats.get((model, version))
        if stats is None:
            stats = self._stats[(model, version)] = _VersionStats()
        return stats

    def request(self, model: str, version: str, outcome: str, seconds: float) -> None:
        s = self._for(model, version)
        s.outcomes[outcome] += 1
        s.latency.observe(seconds)
        if self._otel:
            attrs = {"model": model, "version": version, "outcome": outcome}
            self._otel_requests.add(1, attrs)
            self._otel_latency.record(seconds * 1000.0, attrs)

    def batch(self, model: str, version: str, info: BatchInfo) -> None:
        s = self._for(model, version)
        s.batch.observe(info.rows)
        for waited in info.queue_s:
            s.queue.observe(waited)

    def compute(self, model: str, version: str, seconds: float) -> None:
        self._for(model, version).compute_s += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry)
