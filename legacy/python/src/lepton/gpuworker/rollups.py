"""Per-window rollups of what each version did on this replica, for canary analysis.

The request path only adds numbers to an in-memory accumulator (on the event-loop thread, so no
lock); a background task takes immutable :class:`WindowRollup` snapshots of the windows that
changed and upserts them to the ``metrics`` table. Windows are aligned to multiples of
``window_s`` (unix seconds); each upsert carries the window's running total, so a repeated or late
write is harmless (last write wins).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lepton.gpuworker.scores import score_histogram
from lepton.shared.metrics import (
    LATENCY_BUCKETS_MS,
    MAX_PAIRED_SAMPLES,
    SCORE_BINS,
    WindowRollup,
    latency_bucket,
)


@dataclass
class _Acc:
    requests: int = 0
    routed_requests: int = 0
    errors: int = 0
    nonfinite: int = 0
    rows: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))
    latency_sum_ms: float = 0.0
    compute_ms: float = 0.0
    score_bins: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, np.int64))
    unbinned: list[np.ndarray] = field(default_factory=list)  # row scores not yet binned
    shadow_pairs: int = 0
    shadow_flips: int = 0
    paired_seen: int = 0
    paired: list[float] = field(default_factory=list)
    dirty: bool = True


class RollupRecorder:
    """Accumulates per (model, version, window) counts; snapshots them for the writer."""

    def __init__(
        self,
        replica: str,
        window_s: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.replica = replica
        self.window_s = window_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._accs: dict[tuple[str, str, int], _Acc] = {}

    def _window(self) -> int:
        now = self._clock()
        return int(now // self.window_s) * self.window_s

    def _acc(self, model: str, version: str) -> _Acc:
        key = (model, version, self._window())
        acc = self._accs.get(key)
        if acc is None:
            acc = self._accs[key] = _Acc()
        acc.dirty = True
        return acc

    def record(
        self,
        model: str,
        version: str,
        *,
        routed: bool,
        error: bool,
        nonfinite: bool = False,
        rows: int = 0,
        latency_ms: float,
        compute_ms: float = 0.0,
        scores: np.ndarray | None = None,
    ) -> None:
        acc = self._acc(model, version)
        acc.requests += 1
        acc.routed_requests += int(routed)
        acc.errors += int(error)
        acc.nonfinite += int(nonfinite)
        acc.rows += rows
        acc.latency_buckets[latency_bucket(latency_ms)] += 1
        acc.latency_sum_ms += latency_ms
        acc.compute_ms += compute_ms
        if scores is not None:
            acc.unbinned.append(scores)  # binned in bulk by the background writer

    def record_shadow_pair(
        self, model: str, shadow_version: str, *, flipped: bool, latency_diff_ms: float
    ) -> None:
        """A shadow response compared with production on the same request."""
        acc = self._acc(model, shadow_version)
        acc.shadow_pairs += 1
        acc.shadow_flips += int(flipped)
        # Reservoir sampling keeps a uniform bounded sample of the window's differences.
        acc.paired_seen += 1
        if len(acc.paired) < MAX_PAIRED_SAMPLES:
            acc.paired.append(latency_diff_ms)
        else:
            slot = self._rng.randrange(acc.paired_seen)
            if slot < MAX_PAIRED_SAMPLES:
                acc.paired[slot] = latency_diff_ms

    def take_dirty(self) -> list[WindowRollup]:
        """Snapshots of every window changed since the last call; old clean windows are dropped."""
        current = self._window()
        out: list[WindowRollup] = []
        for (model, version, start), acc in list(self._accs.items()):
            if acc.dirty:
                out.append(self._snapshot(model, version, start, acc))
                acc.dirty = False
            elif start < current:
                del self._accs[(model, version, start)]
        return out

    def _snapshot(self, model: str, version: str, start: int, acc: _Acc) -> WindowRollup:
        if acc.unbinned:
            acc.score_bins += score_histogram(np.concatenate(acc.unbinned))
            acc.unbinned.clear()
        return WindowRollup(
            model=model,
            version=version,
            replica=self.replica,
            window_start=start,
            window_seconds=self.window_s,
            requests=acc.requests,
            routed_requests=acc.routed_requests,
            errors=acc.errors,
            nonfinite=acc.nonfinite,
            rows=acc.rows,
            latency_buckets=tuple(acc.latency_buckets),
            latency_sum_ms=acc.latency_sum_ms,
            compute_ms=acc.compute_ms,
            score_bins=tuple(int(x) for x in acc.score_bins),
            shadow_pairs=acc.shadow_pairs,
            shadow_flips=acc.shadow_flips,
            paired_latency_diff_ms=tuple(x for x in acc.paired if math.isfinite(x)),
        )
