"""A dynamic batcher that knows nothing about ONNX or HTTP.

Callers ``await submit(item)`` and get that item's result. Items wait in a queue per compatibility
key (only items with the same key share a batch) until the queue holds ``max_batch_size`` rows or
its oldest item has waited ``max_delay_s``, and a batch slot is free (at most
``max_concurrent_batches`` run at once; while all are busy the queue keeps filling, so batches grow
with load). An idle batcher (nothing running) dispatches at once: waiting for company only pays
off when there is concurrent work, so a lone caller never pays ``max_delay_s``. ``run_batch`` gets
the items in order and must return one result per item: a shorter or longer answer, or an
exception, fails every future of that batch and no other. After ``aclose`` a submit still works,
it just runs alone, so a version being unloaded never fails a request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from lepton.gpuworker.errors import BatchFailed

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    rows: int
    future: asyncio.Future[Out]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchInfo:
    """What the batcher tells observers about each batch it ran (for metrics)."""

    items: int
    rows: int
    queue_s: tuple[float, ...]  # time each item waited before its batch started


class DynamicBatcher(Generic[In, Out]):
    """Groups concurrent submissions into batches for ``run_batch``."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_concurrent_batches: int = 1,
        rows_of: Callable[[In], int] = lambda _: 1,
        key_of: Callable[[In], Hashable] = lambda _: None,
        on_batch: Callable[[BatchInfo], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be ≥ 1, got {max_batch_size}")
        if max_delay_s < 0:
            raise ValueError(f"max_delay_s must be ≥ 0, got {max_delay_s}")
        if max_concurrent_batches < 1:
            raise ValueError(f"max_concurrent_batches must be ≥ 1, got {max_concurrent_batches}")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._max_concurrent = max_concurrent_batches
        self._rows_of = rows_of
        self._key_of = key_of
        self._on_batch = on_batch
        self._queues: dict[Hashable, deque[_Pending[In, Out]]] = {}
        self._rows: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def submit(self, item: In) -> Out:
        """Queue ``item`` and wait for its result (or its batch's exception)."""
        rows = self._rows_of(item)
        if self._closed or (self._running == 0 and not self._queues):
            # Idle (or closed while a version unloads): run alone in the caller's own task,
            # sparing a queue entry, a task and a wake-up per request.
            return await self._run_alone(item, rows)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        pending = _Pending(item, rows, future)
        key = self._key_of(item)
        self._queues.setdefault(key, deque()).append(pending)
        self._rows[key] = self._rows.get(key, 0) + pending.rows
        self._dispatch(key)
        return await future

    def _dispatch(self, key: Hashable) -> None:
        queue = self._queues.get(key)
        if not queue:
            return
        if self._running >= self._max_concurrent:
            return  # a finishing batch calls us again
        waited = time.perf_counter() - queue[0].enqueued
        idle = self._running == 0
        full = self._rows[key] >= self.max_batch_size
        if not (idle or full or waited >= self.max_delay_s or self._closed):
            if key not in self._timers:
                loop = asyncio.get_running_loop()
                self._timers[key] = loop.call_later(self.max_delay_s - waited, self._on_timer, key)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        batch: list[_Pending[In, Out]] = []
        rows = 0
        # Take whole items in arrival order; an item larger than the limit runs on its own.
        while queue and (not batch or rows + queue[0].rows <= self.max_batch_size):
            taken = queue.popleft()
            batch.append(taken)
            rows += taken.rows
        self._rows[key] -= rows
        if not queue:
            del self._queues[key]
            del self._rows[key]
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._run_and_release(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if key in self._queues:
            self._dispatch(key)

    def _on_timer(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self._dispatch(key)

    async def _run_alone(self, item: In, rows: int) -> Out:
        self._running += 1
        try:
            if self._on_batch is not None:
                self._on_batch(BatchInfo(1, rows, (0.0,)))
            results = await self._run_batch([item])
            if len(results) != 1:
                raise BatchFailed(
                    f"batch of 1 requests returned {len(results)} results; "
                    "every request of the batch failed"
                )
            return results[0]
        finally:
            self._release()

    async def _run_and_release(self, batch: list[_Pending[In, Out]]) -> None:
        try:
            await self._run(batch)
        finally:
            self._release()

    def _release(self) -> None:
        self._running -= 1
        # Oldest queue first, so no key starves behind a busy one.
        for key in sorted(self._queues, key=lambda k: self._queues[k][0].enqueued):
            self._dispatch(key)

    async def _run(self, batch: list[_Pending[In, Out]]) -> None:
        started = time.perf_counter()
        if self._on_batch is not None:
            self._on_batch(
                BatchInfo(
                    len(batch),
                    sum(p.rows for p in batch),
                    tuple(started - p.enqueued for p in batch),
                )
            )
        try:
            results = await self._run_batch([p.item for p in batch])
            if len(results) != len(batch):
                raise BatchFailed(
                    f"batch of {len(batch)} requests returned {len(results)} results; "
                    "every request of the batch failed"
                )
        except asyncio.CancelledError:
            for p in batch:
                p.future.cancel()
            raise
        except Exception as err:  # every future of the batch must learn of the failure
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    async def aclose(self) -> None:
        """Run what is queued now, wait for running batches; later submits run alone."""
        self._closed = True
        for key in list(self._queues):
            self._dispatch(key)
        while self._tasks or self._queues:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(0.001)
