"""A simulated GPU worker replica for lifecycle tests: real heartbeats, real metric rollups.

It does what a worker replica writes to storage — a ``workers`` heartbeat listing the versions it
has ready (every version named in the routes, except those told never to warm) and one
``metrics`` rollup per (window, version) with request, error and latency counts that follow the
routes' weights — so the real lifecycle reads exactly what a replica would write. Error rates and
latencies per version are set by the test to create regressions, including one that only shows
when the candidate takes all routed traffic (``Behaviour.error_rate_at_full_weight``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lepton.functions.services import Services
from lepton.shared.metrics import LATENCY_BUCKETS_MS, SCORE_BINS, WindowRollup, latency_bucket
from lepton.shared.workers import Heartbeat


@dataclass
class Behaviour:
    error_rate: float = 0.0
    latency_ms: float = 4.0
    flip_rate: float = 0.0  # shadow: share of paired requests whose top-1 class differs
    # As the candidate at 100% (the last canary step, a blue/green bake): a regression that only
    # appears under full load, where production gets no routed traffic to compare with.
    error_rate_at_full_weight: float | None = None


@dataclass
class FakeWorker:
    services: Services
    model: str
    replica: str = "sim-1"
    requests_per_tick: int = 120
    tick_s: float = 0.15
    never_warm: set[str] = field(default_factory=set)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _totals: dict[tuple[int, str], WindowRollup] = field(default_factory=dict)

    def start(self) -> FakeWorker:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Storage is torn down at test end; the next tick or stop() ends it.
            with contextlib.suppress(Exception):
                self.tick()
            self._stop.wait(self.tick_s)

    def tick(self) -> None:
        routes = self.services.registry.get_routes(self.model)
        named = {v for v in (routes.production, routes.candidate, routes.shadow) if v}
        ready = tuple(sorted(named - self.never_warm))
        self.services.workers.beat(
            Heartbeat(
                replica=self.replica,
                url="http://127.0.0.1:0",
                provider="CPUExecutionProvider",
                at=datetime.now(UTC),
                loaded={self.model: ready},
                ready={self.model: ready},
            )
        )
        if not routes.production:
            return
        now = int(time.time())
        n = self.requests_per_tick
        to_candidate = 0
        if routes.candidate and routes.candidate in ready:
            to_candidate = round(n * routes.candidate_weight_bp / 10_000)
        split = {routes.production: n - to_candidate}
        if to_candidate:
            assert routes.candidate is not None
            split[routes.candidate] = to_candidate
        shadow_copies = 0
        if routes.shadow and routes.shadow in ready and routes.shadow_fraction_bp:
            shadow_copies = round(split[routes.production] * routes.shadow_fraction_bp / 10_000)
        full = routes.candidate if to_candidate == n else None
        for version, routed in split.items():
            self._add(now, version, routed, routed, 0, full_weight=version == full)
        if shadow_copies and routes.shadow:
            self._add(now, routes.shadow, shadow_copies, 0, shadow_copies)

    def _add(
        self,
        now: int,
        version: str,
        requests: int,
        routed: int,
        pairs: int,
        *,
        full_weight: bool = False,
    ) -> None:
        if requests == 0:
            return
        how = self.behaviour.get(version, Behaviour())
        rate = how.error_rate
        if full_weight and how.error_rate_at_full_weight is not None:
            rate = how.error_rate_at_full_weight
        errors = round(requests * rate)
        buckets = [0] * len(LATENCY_BUCKETS_MS)
        buckets[latency_bucket(how.latency_ms)] = requests
        bins = [0] * SCORE_BINS
        bins[-1] = requests  # confident predictions, the same shape for every version
        tick = WindowRollup(
            self.model,
            version,
            self.replica,
            now,
            1,
            requests=requests,
            routed_requests=routed,
            errors=errors,
            rows=requests,
            latency_buckets=tuple(buckets),
            latency_sum_ms=how.latency_ms * requests,
            compute_ms=0.05 * requests,
            score_bins=tuple(bins),
            shadow_pairs=pairs,
            shadow_flips=round(pairs * how.flip_rate),
            paired_latency_diff_ms=(0.0,) * min(pairs, 8),
        )
        key = (now, version)
        total = self._totals[key].merged(tick) if key in self._totals else tick
        total = WindowRollup.from_json({**total.to_json(), "replica": self.replica})
        self._totals[key] = total
        self.services.metrics.write(total)
