"""A loaded version ready to serve: its ONNX session behind a dynamic batcher.

Batches run on a thread pool (ONNX Runtime releases the GIL) so the event loop keeps parsing
requests; a version whose batches take less than ``inline_below_ms`` runs them on the loop itself,
because for tiny models the hand-off to a thread costs more than the inference. The choice follows
a moving average of the measured ORT time, seeded by the warm-up run.

Measured on the thread, a run's time includes waiting to get the GIL back from a busy event loop,
so one spike could park a tiny model on the thread for good: every later sample there is inflated
the same way. A version whose average is near the threshold therefore runs every
``_PROBE_EVERY``-th batch inline, and an inline probe (no GIL wait in it) that comes in under the
threshold replaces the average. Heavier versions are never probed: blocking the loop for them is
what the thread is for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor

from lepton.gpuworker.batcher import BatchInfo, DynamicBatcher
from lepton.gpuworker.observability import WorkerMetrics
from lepton.gpuworker.session import Item, ItemResult, OnnxVersion

_EWMA = 0.1
_PROBE_EVERY = 64  # batches between inline re-measurements of a thread-run version
_PROBE_CEILING = 10.0  # probe only while the average is below this multiple of the threshold


class ServedVersion:
    """One ready version: ``await infer(item)`` batches it with concurrent requests."""

    def __init__(
        self,
        onnx_version: OnnxVersion,
        executor: Executor,
        metrics: WorkerMetrics,
        *,
        max_delay_s: float,
        max_concurrent_batches: int,
        inline_below_ms: float,
        warm_compute_ms: float,
        footprint: int,
    ) -> None:
        self.onnx = onnx_version
        self.model = onnx_version.model
        self.version = onnx_version.version
        self.footprint = footprint
        self._executor = executor
        self._metrics = metrics
        self._inline_below_ms = inline_below_ms
        self._avg_compute_ms = warm_compute_ms
        self._batches = 0
        self.batcher: DynamicBatcher[Item, ItemResult] = DynamicBatcher(
            self._run_batch,
            max_batch_size=onnx_version.max_batch_size,
            max_delay_s=max_delay_s,
            max_concurrent_batches=max_concurrent_batches,
            rows_of=lambda item: item.rows,
            key_of=lambda item: item.key,
            on_batch=self._on_batch,
        )

    def _on_batch(self, info: BatchInfo) -> None:
        self._metrics.batch(self.model, self.version, info)

    @property
    def runs_inline(self) -> bool:
        """Whether the next ordinary batch runs on the event loop (else on the thread pool)."""
        return self._avg_compute_ms < self._inline_below_ms

    async def _run_batch(self, items: Sequence[Item]) -> Sequence[ItemResult]:
        self._batches += 1
        inline = self.runs_inline
        probe = (
            not inline
            and self._batches % _PROBE_EVERY == 0
            and self._avg_compute_ms < _PROBE_CEILING * self._inline_below_ms
        )
        if inline or probe:
            results = self.onnx.run_items(items)
        else:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._executor, self.onnx.run_items, items)
        batch_ms = sum(r.compute_ms for r in results)
        if probe and batch_ms < self._inline_below_ms:
            self._avg_compute_ms = batch_ms  # measured without a GIL wait: trust it over the past
        else:
            self._avg_compute_ms += _EWMA * (batch_ms - self._avg_compute_ms)
        self._metrics.compute(self.model, self.version, batch_ms / 1000.0)
        return results

    async def infer(self, item: Item) -> ItemResult:
        return await self.batcher.submit(item)

    async def aclose(self) -> None:
        await self.batcher.aclose()
