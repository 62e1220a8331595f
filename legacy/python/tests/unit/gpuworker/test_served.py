"""Where a version's batches run: on the event loop when cheap, else on the thread pool.

Real ONNX Runtime on a tiny model; the executor is a real thread pool that counts what it is
given, so the test sees which path each batch took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lepton.dev import sample_models
from lepton.gpuworker.observability import WorkerMetrics
from lepton.gpuworker.providers import choose_provider
from lepton.gpuworker.served import _PROBE_EVERY, ServedVersion
from lepton.gpuworker.session import OnnxVersion
from lepton.gpuworker.settings import WorkerSettings

T = TypeVar("T")
CHOICE = choose_provider(WorkerSettings(intra_op_threads=1, provider="cpu"))


class GilWaitPool(ThreadPoolExecutor):
    """Counts batches run on the thread, and reports each one ``extra_ms`` slower than it was.

    That is what a busy event loop does to a thread-run batch: the measured ORT time includes
    waiting to get the GIL back. Every sample on the thread is inflated the same way, so the
    moving average alone never brings the version back inline.
    """

    def __init__(self, extra_ms: float = 2.0) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0
        self.extra_ms = extra_ms

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1

        def inflated() -> Any:
            return [
                replace(r, compute_ms=r.compute_ms + self.extra_ms) for r in fn(*args, **kwargs)
            ]

        return super().submit(inflated)  # type: ignore[return-value]


def _served(tmp_path: Path, pool: GilWaitPool, warm_compute_ms: float) -> ServedVersion:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(sample_models.scaled_identity(1.0))
    onnx = OnnxVersion("tiny", "1.0.0", path, CHOICE, max_batch_size=8)
    return ServedVersion(
        onnx,
        pool,
        WorkerMetrics("r", CHOICE.name),
        max_delay_s=0.0,
        max_concurrent_batches=1,
        inline_below_ms=0.3,
        warm_compute_ms=warm_compute_ms,
        footprint=0,
    )


async def _serve(served: ServedVersion, n: int) -> None:
    x = np.ones((1, 4), np.float32)
    for _ in range(n):
        result = await served.infer(served.onnx.prepare({"input": ("FP32", x)}))
        np.testing.assert_array_equal(result.outputs["output"], x)


def test_a_tiny_model_parked_on_the_thread_by_a_spike_comes_back_inline(tmp_path: Path) -> None:
    pool = GilWaitPool()
    # As if one GIL-inflated sample had pushed the average to 2 ms, over the 0.3 ms threshold.
    served = _served(tmp_path, pool, warm_compute_ms=2.0)
    assert not served.runs_inline
    asyncio.run(_serve(served, _PROBE_EVERY - 1))
    assert not served.runs_inline  # the inflated thread samples keep it there
    assert pool.submitted == _PROBE_EVERY - 1
    asyncio.run(_serve(served, 1))
    # Its real cost is microseconds: the inline probe at batch _PROBE_EVERY measured that.
    assert served.runs_inline
    assert pool.submitted == _PROBE_EVERY - 1
    asyncio.run(_serve(served, 20))
    assert pool.submitted == _PROBE_EVERY - 1  # inline from then on
    pool.shutdown()


def test_a_heavy_version_is_never_probed_on_the_event_loop(tmp_path: Path) -> None:
    # A version whose batches take 50 ms on the thread, far above the probe ceiling
    # (10 x 0.3 ms): blocking the loop for it is what the thread is for, probes included.
    pool = GilWaitPool(extra_ms=50.0)
    served = _served(tmp_path, pool, warm_compute_ms=50.0)
    asyncio.run(_serve(served, 2 * _PROBE_EVERY))
    assert pool.submitted == 2 * _PROBE_EVERY
    assert not served.runs_inline
    pool.shutdown()
