"""The dynamic batcher on its own: grouping, limits, delays, failures, closing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from lepton.gpuworker.batcher import BatchInfo, DynamicBatcher
from lepton.gpuworker.errors import BatchFailed


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.delay = delay
        self.fail_on = fail_on

    async def run(self, items: Sequence[tuple[str, int]]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and any(v == self.fail_on for _, v in items):
            raise RuntimeError("boom")
        return [v * 10 for _, v in items]


def _batcher(rec: Recorder, **kw: object) -> DynamicBatcher[tuple[str, int], int]:
    return DynamicBatcher(rec.run, key_of=lambda item: item[0], **kw)  # type: ignore[arg-type]


def test_concurrent_items_share_batches_up_to_the_limit_and_get_their_own_result() -> None:
    async def go() -> None:
        rec = Recorder(delay=0.01)
        b = _batcher(rec, max_batch_size=4, max_delay_s=0.05)
        results = await asyncio.gather(*(b.submit(("k", i)) for i in range(10)))
        assert results == [i * 10 for i in range(10)]
        # The first runs at once (idle); the rest queue behind it and fill batches of 4.
        assert [len(x) for x in rec.batches] == [1, 4, 4, 1]
        assert [v for batch in rec.batches for _, v in batch] == list(range(10))

    asyncio.run(go())


def test_only_items_with_the_same_key_share_a_batch() -> None:
    async def go() -> None:
        rec = Recorder()
        b = _batcher(rec, max_batch_size=8, max_delay_s=0.02)
        items = [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]
        results = await asyncio.gather(*(b.submit(i) for i in items))
        assert results == [10, 20, 30, 40, 50]
        assert all(len({k for k, _ in batch}) == 1 for batch in rec.batches)
        assert [[v for _, v in batch] for batch in rec.batches] == [[1], [2, 4], [3, 5]]

    asyncio.run(go())


def test_an_idle_batcher_never_delays_a_lone_item() -> None:
    async def go() -> None:
        rec = Recorder()
        b = _batcher(rec, max_batch_size=64, max_delay_s=0.5)
        started = time.perf_counter()
        assert await b.submit(("k", 7)) == 70
        assert time.perf_counter() - started < 0.1

    asyncio.run(go())


def test_items_arriving_while_busy_wait_at_most_max_delay_for_company() -> None:
    async def go() -> None:
        rec = Recorder(delay=1.0)
        b = _batcher(rec, max_batch_size=64, max_delay_s=0.05, max_concurrent_batches=2)
        busy = asyncio.ensure_future(b.submit(("k", 0)))  # occupies one slot for a second
        await asyncio.sleep(0.01)
        rec.delay = 0.0
        started = time.perf_counter()
        assert await b.submit(("k", 7)) == 70  # a slot is free: runs once max_delay expires
        assert 0.045 <= time.perf_counter() - started < 0.5
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy

    asyncio.run(go())


def test_zero_delay_dispatches_immediately() -> None:
    async def go() -> None:
        rec = Recorder()
        b = _batcher(rec, max_batch_size=64, max_delay_s=0.0)
        started = time.perf_counter()
        assert await b.submit(("k", 1)) == 10
        assert time.perf_counter() - started < 0.02

    asyncio.run(go())


def test_rows_count_towards_the_limit_and_an_oversized_item_runs_alone() -> None:
    async def go() -> None:
        rec = Recorder()
        b: DynamicBatcher[tuple[str, int], int] = DynamicBatcher(
            rec.run, max_batch_size=4, max_delay_s=0.01, rows_of=lambda item: item[1]
        )
        results = await asyncio.gather(*(b.submit(("k", n)) for n in (3, 6, 1, 2)))
        assert results == [30, 60, 10, 20]
        rows = [sum(n for _, n in batch) for batch in rec.batches]
        assert rows == [3, 6, 3]

    asyncio.run(go())


def test_a_failed_batch_fails_each_of_its_futures_and_no_other() -> None:
    async def go() -> None:
        rec = Recorder(delay=0.01, fail_on=2)
        b = _batcher(rec, max_batch_size=2, max_delay_s=0.01, max_concurrent_batches=1)
        outcomes = await asyncio.gather(
            *(b.submit(("k", i)) for i in range(4)), return_exceptions=True
        )
        # Batches: [0] alone (idle), then [1, 2] which fails, then [3].
        assert outcomes[0] == 0 and outcomes[3] == 30
        assert all(isinstance(o, RuntimeError) for o in outcomes[1:3])

    asyncio.run(go())


def test_wrong_number_of_results_fails_the_whole_batch() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.01)  # long enough for the other submits to queue
        return list(items)[:-1]

    async def go() -> None:
        b: DynamicBatcher[int, int] = DynamicBatcher(short, max_batch_size=3, max_delay_s=0.01)
        outcomes = await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)
        assert all(isinstance(o, BatchFailed) for o in outcomes)
        assert "batch of 2 requests returned 1 results" in str(outcomes[1])

    asyncio.run(go())


def test_batches_grow_while_all_slots_are_busy() -> None:
    async def go() -> None:
        rec = Recorder(delay=0.03)
        b = _batcher(rec, max_batch_size=32, max_delay_s=0.0, max_concurrent_batches=1)
        first = asyncio.ensure_future(b.submit(("k", 0)))
        await asyncio.sleep(0.005)  # the first batch is running; the rest queue behind it
        rest = await asyncio.gather(*(b.submit(("k", i)) for i in range(1, 9)))
        assert await first == 0 and rest == [i * 10 for i in range(1, 9)]
        assert [len(x) for x in rec.batches] == [1, 8]

    asyncio.run(go())


def test_observer_sees_rows_and_queue_times() -> None:
    seen: list[BatchInfo] = []

    async def go() -> None:
        rec = Recorder()
        b = _batcher(rec, max_batch_size=2, max_delay_s=0.01, on_batch=seen.append)
        await asyncio.gather(b.submit(("k", 1)), b.submit(("k", 2)), b.submit(("k", 3)))

    asyncio.run(go())
    assert [(s.items, s.rows) for s in seen] == [(1, 1), (2, 2)]
    assert all(q >= 0 for s in seen for q in s.queue_s)


def test_close_runs_what_is_queued_and_later_submits_still_work() -> None:
    async def go() -> None:
        rec = Recorder()
        b = _batcher(rec, max_batch_size=8, max_delay_s=10.0)
        queued = [asyncio.ensure_future(b.submit(("k", i))) for i in range(3)]
        await asyncio.sleep(0)
        await b.aclose()
        assert [q.result() for q in queued] == [0, 10, 20]
        assert await b.submit(("k", 5)) == 50
        assert b.pending == 0

    asyncio.run(go())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0, "max_delay_s": 0.0}, "max_batch_size"),
        ({"max_batch_size": 1, "max_delay_s": -1.0}, "max_delay_s"),
        ({"max_batch_size": 1, "max_delay_s": 0.0, "max_concurrent_batches": 0}, "concurrent"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DynamicBatcher(Recorder().run, **kwargs)  # type: ignore[arg-type]
