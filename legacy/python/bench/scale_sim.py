"""Scale simulation: planning figures from the real registry, router and statistics on Azurite.

DESIGN.md §8 asks for deployment planning figures (models, versions, replicas, requests/s) from a
simulation, not from guesses. This one starts a private Azurite and drives the real code at scale:

1. **Registry** (:class:`~lepton.shared.registry.TableRegistry`): M models x V versions, each
   version moved through the real lifecycle (registered → validating → evaluating → canary →
   production, the previous one → superseded, routes set at each step). Then p50/p95 of
   ``get_routes``, ``get_version``, ``list_versions`` and a conditional ``transition`` on a few
   probe models at M small and at M large, side by side: the claim to check is that partitioning
   by model keeps per-model operations flat as models are added. ``list_models`` (a scan of every
   partition) and a worker's storage sweep per poll (what ``WorkerRuntime.sync`` reads: the model
   list, then each model's routes) are shown for contrast, since they do grow with M.
2. **Canary analysis** (:class:`~lepton.shared.metrics.MetricsStore`,
   :func:`~lepton.shared.canary.decide_canary_step`): R replicas each write one rollup per window
   for candidate and production over a policy window; the time of ``totals`` + the decision for
   R=1 vs R large, the metrics rows a model adds per day, and the retention job's
   :func:`~lepton.shared.metrics.expire_rollups` timed on those rows.
3. **Warm-up quorum** (:class:`~lepton.shared.workers.WorkerDirectory`): heartbeats of R replicas,
   the time of ``warm_status`` at R=1 vs R large.
4. **Router** (:mod:`lepton.gpuworker.router`): decisions/s of ``RouteTable.pick``, sticky and not,
   and its share of a 1 ms request budget.
5. **Planning**: the measured figures against the worker's and policy's default intervals and
   Azure Table storage's documented scalability targets.

Azurite on a shared 2-core machine is not Azure: its latencies are not Azure's. The ratios (M small
vs large, R=1 vs large) and the request/entity counts are the point; absolute latencies only
sketch the shape, they predict nothing about Azure. Everything but the timings is deterministic
(fixed seeds).

Run: ``.venv/bin/python -m bench.scale_sim [--quick]`` (``--quick``: small scale, under a minute;
the default scale takes about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from azure.data.tables import TableServiceClient

from lepton.dev.azurite import Azurite
from lepton.gpuworker.router import RouteTable, effective_routes, sticky_bucket
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.canary import CanaryThresholds, decide_canary_step
from lepton.shared.lifecycle import Stage
from lepton.shared.metrics import (
    LATENCY_BUCKETS_MS,
    SCORE_BINS,
    MetricsStore,
    WindowRollup,
    expire_rollups,
    sum_rollups,
)
from lepton.shared.policy import Policy
from lepton.shared.records import BASIS_POINTS, Routes
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import MetricsRetentionSettings, StorageSettings
from lepton.shared.storage import blob_service, ensure_layout, table_service
from lepton.shared.workers import Heartbeat, WorkerDirectory

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Azure Table storage's documented scalability targets (learn.microsoft.com/azure/storage/tables/
# scalability-targets, 1 KiB entities): per storage account and per table partition.
AZURE_ACCOUNT_TX_PER_S = 20_000
AZURE_PARTITION_ENTITIES_PER_S = 2_000

# The intervals the real code runs with by default: the planning figures follow them.
WORKER = WorkerSettings()
POLICY = Policy()
THRESHOLDS = CanaryThresholds()
RETENTION = MetricsRetentionSettings()
ACTOR = "scale-sim"
# Canary weight of the simulated step (25%, the middle of the default steps): enough candidate
# requests per window that the decision is judged, not "insufficient evidence", at R=1.
CANARY_WEIGHT_BP = 2500
# Requests one replica serves for one model in one window (10 req/s at the default 10 s window).
REQUESTS_PER_REPLICA_WINDOW = 100
# A fixed, window-aligned start, so runs are comparable (and nothing depends on the clock).
WINDOW_BASE = 1_700_000_000 // WORKER.window_s * WORKER.window_s


@dataclass(frozen=True)
class Scale:
    models_small: int
    models_large: int
    versions: int  # per model, all through the lifecycle
    probes: int  # models whose per-model operations are timed
    samples: int  # timed calls per operation per registry size
    replicas: tuple[int, ...]  # metric writers per canary model (first = 1, last = "large")
    heartbeat_replicas: tuple[int, ...]  # heartbeats in the workers table (first = 1)
    models_per_replica: int  # models each heartbeat lists as loaded and ready
    canary_reads: int  # timed totals + decisions per replica count
    router_decisions: int  # per timed round
    throughput_s: float  # per round of the concurrent route-read measurement
    threads: int = 4  # for filling tables and the concurrent route reads

    @property
    def windows(self) -> int:
        # One canary step's policy window, in the worker's rollup windows (300 s / 10 s = 30).
        return math.ceil(POLICY.window_s / WORKER.window_s)


QUICK = Scale(
    models_small=5,
    models_large=40,
    versions=3,
    probes=3,
    samples=30,
    replicas=(1, 8, 32),
    heartbeat_replicas=(1, 32, 128),
    models_per_replica=10,
    canary_reads=3,
    router_decisions=100_000,
    throughput_s=0.5,
)
DEFAULT = Scale(
    models_small=10,
    models_large=500,
    versions=3,
    probes=5,
    samples=100,
    replicas=(1, 16, 128),
    heartbeat_replicas=(1, 64, 512),
    models_per_replica=20,
    canary_reads=7,
    router_decisions=500_000,
    throughput_s=1.5,
)
ROUNDS = 5  # of in-process timings (router); the median is printed


# -- measuring --------------------------------------------------------------------------------


class RequestCounter:
    """Counts HTTP requests a client sends (the unit Azure bills and its targets are given in)."""

    def __init__(self) -> None:
        self._seen = 0
        self._lock = threading.Lock()

    def hook(self, _request: Any) -> None:
        with self._lock:
            self._seen += 1

    @property
    def seen(self) -> int:
        return self._seen


def counting_tables(connection: str, counter: RequestCounter) -> TableServiceClient:
    # storage.table_service builds clients from settings alone; the same constructor with
    # azure-core's request hook added lets the simulation count the requests the real registry
    # sends per operation. Everything else about the client is identical.
    return TableServiceClient.from_connection_string(connection, raw_request_hook=counter.hook)


@dataclass(frozen=True)
class OpStats:
    p50_s: float
    p95_s: float
    requests_per_call: float
    calls: int


def stats_of(samples: Sequence[float], requests: int) -> OpStats:
    arr = np.asarray(samples, dtype=np.float64)
    return OpStats(
        p50_s=float(np.percentile(arr, 50)),
        p95_s=float(np.percentile(arr, 95)),
        requests_per_call=requests / len(samples),
        calls=len(samples),
    )


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds:.1f} s" if seconds < 300 else f"{seconds / 60:,.0f} min"


def requests_text(n: float) -> str:
    return f"{n:.0f} request" + ("" if round(n) == 1 else "s")


class Table:
    """The printed result: one row per figure, printed as soon as it is known."""

    def __init__(self) -> None:
        self.header = f"{'figure':<46} {'value':>22}  detail"

    def start(self) -> None:
        print(self.header)
        print("-" * 120, flush=True)

    def section(self, title: str) -> None:
        print(f"[{title}]", flush=True)

    def row(self, figure: str, value: str, detail: str = "") -> None:
        print(f"{figure:<46} {value:>22}  {detail}", flush=True)


# -- 1. registry ------------------------------------------------------------------------------


def model_name(i: int) -> str:
    return f"sim-{i:05d}"


def version_name(i: int) -> str:
    return f"1.{i}.0"


def lifecycle(registry: TableRegistry, model: str, versions: int) -> None:
    """Every version of ``model`` through the stages and route changes a promotion makes.

    The order is the lifecycle's (shared/rollout.py): a first version goes straight to
    production, a later one through a canary at a weight, then production, and the previous
    production version is superseded. Every transition names ``expected_from``, as the
    orchestrator's do, so each is the conditional (ETag) write the real rollout makes.
    """
    for i in range(versions):
        version = version_name(i)
        sha = hashlib.sha256(f"{model}/{version}".encode()).hexdigest()
        registry.register_version(
            model, version, sha256=sha, size=4096, blob_path=f"{model}/{version}/model.onnx"
        )
        move = (
            (Stage.REGISTERED, Stage.VALIDATING),
            (Stage.VALIDATING, Stage.EVALUATING),
            (Stage.EVALUATING, Stage.PRODUCTION if i == 0 else Stage.CANARY),
        )
        for before, after in move:
            registry.transition(
                model, version, after, reason="sim", actor=ACTOR, expected_from=before
            )
        if i == 0:
            routes = registry.get_routes(model)
            registry.set_routes(replace(routes, production=version), actor=ACTOR, reason="sim")
            continue
        routes = registry.get_routes(model)
        registry.set_routes(
            replace(routes, candidate=version, candidate_weight_bp=CANARY_WEIGHT_BP),
            actor=ACTOR,
            reason="canary",
        )
        registry.transition(
            model, version, Stage.PRODUCTION, reason="sim", actor=ACTOR, expected_from=Stage.CANARY
        )
        routes = registry.get_routes(model)
        registry.set_routes(
            replace(routes, production=version, candidate=None, candidate_weight_bp=0),
            actor=ACTOR,
            reason="promote",
        )
        registry.transition(
            model,
            version_name(i - 1),
            Stage.SUPERSEDED,
            reason="superseded",
            actor=ACTOR,
            expected_from=Stage.PRODUCTION,
        )


def fill_registry(
    connection: str, models: Sequence[str], versions: int, threads: int
) -> tuple[float, int]:
    """Run the lifecycle of ``models`` on ``threads`` threads; (seconds, requests sent)."""
    counter = RequestCounter()
    chunks = [list(models[i::threads]) for i in range(threads)]

    def work(chunk: list[str]) -> None:
        registry = TableRegistry(counting_tables(connection, counter))  # one client per thread
        for model in chunk:
            lifecycle(registry, model, versions)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [c for c in chunks if c]))
    return time.perf_counter() - started, counter.seen


def probe_registry(connection: str, probes: Sequence[str], scale: Scale) -> dict[str, OpStats]:
    """Per-model operations on the probe models, interleaved so noise hits all of them alike."""
    counter = RequestCounter()
    registry = TableRegistry(counting_tables(connection, counter))
    oldest = version_name(0)  # superseded: toggled to production and back (both legal moves)
    samples: dict[str, list[float]] = {k: [] for k in ("get_routes", "get_version", "list", "tr")}
    requests = dict.fromkeys(samples, 0)

    def measure(key: str, fn: Callable[[], object]) -> None:
        before = counter.seen
        samples[key].append(timed(fn))
        requests[key] += counter.seen - before

    for i in range(scale.samples):
        model = probes[i % len(probes)]
        measure("get_routes", partial(registry.get_routes, model))
        measure("get_version", partial(registry.get_version, model, oldest))
        measure("list", partial(registry.list_versions, model))
        up, down = (Stage.SUPERSEDED, Stage.PRODUCTION), (Stage.PRODUCTION, Stage.SUPERSEDED)
        for src, dst in (up, down):
            move = partial(registry.transition, model, oldest, dst, reason="probe", actor=ACTOR)
            measure("tr", partial(move, expected_from=src))
    out = {k: stats_of(v, requests[k]) for k, v in samples.items()}
    scans: list[float] = []
    before = counter.seen
    for _ in range(max(5, scale.samples // 10)):
        scans.append(timed(registry.list_models))
    out["list_models"] = stats_of(scans, counter.seen - before)
    return out


def worker_sweep(connection: str, repeats: int) -> tuple[float, int]:
    """Median time and requests of one replica's storage reads per poll, with no model filter.

    ``WorkerRuntime.sync`` with ``LEPTON_WORKER_MODELS`` empty lists every model, then reads each
    one's routes, one after the other (the pool, loading and routing are left out: no I/O).
    """
    counter = RequestCounter()
    registry = TableRegistry(counting_tables(connection, counter))
    times: list[float] = []
    before = counter.seen

    def sweep() -> None:
        for model in registry.list_models():
            registry.get_routes(model)

    for _ in range(repeats):
        times.append(timed(sweep))
    return float(np.median(times)), (counter.seen - before) // repeats


def _read_routes_until(connection: str, model: str, stop: float) -> int:
    registry = TableRegistry(table_service(StorageSettings(connection_string=connection)))
    reads = 0
    while time.perf_counter() < stop:
        registry.get_routes(model)
        reads += 1
    return reads


def route_read_throughput(connection: str, model: str, threads: int, seconds: float) -> float:
    """get_routes/s on one model's partition from ``threads`` concurrent readers (median of 3)."""
    rates: list[float] = []
    for _ in range(3):
        stop = time.perf_counter() + seconds
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            counts = list(
                pool.map(partial(_read_routes_until, connection, model), [stop] * threads)
            )
        rates.append(sum(counts) / (time.perf_counter() - started))
    return float(np.median(rates))


# -- 2. canary analysis -----------------------------------------------------------------------


def rollup(
    model: str, version: str, *, replica: str, window: int, requests: int, rng: np.random.Generator
) -> WindowRollup:
    """What one replica's recorder would flush for one version in one window (seeded)."""
    # Latency mostly 2-10 ms with a tail; predictions spread over the score bins.
    weights = np.array([1, 2, 6, 20, 30, 25, 10, 4, 1, 0.5, 0.3, 0.1] + [0.05] * 11)
    buckets = rng.multinomial(requests, weights / weights.sum())
    bins = rng.multinomial(requests, np.full(SCORE_BINS, 1 / SCORE_BINS))
    bounds = np.array([b if math.isfinite(b) else 5000.0 for b in LATENCY_BUCKETS_MS])
    errors = int(rng.binomial(requests, 0.01))
    return WindowRollup(
        model=model,
        version=version,
        replica=replica,
        window_start=window,
        window_seconds=WORKER.window_s,
        requests=requests,
        routed_requests=requests,
        errors=errors,
        rows=requests,
        latency_buckets=tuple(int(x) for x in buckets),
        latency_sum_ms=float(np.dot(buckets, bounds * 0.7)),
        compute_ms=requests * 0.4,
        score_bins=tuple(int(x) for x in bins),
    )


@dataclass(frozen=True)
class CanaryRun:
    replicas: int
    rows: int
    write_s: float  # wall time writing all rows (threads)
    read: OpStats  # totals(): the query and the sums over replicas and windows
    query_s: float  # median read() alone: the query and parsing the rows
    sum_s: float  # median sum_rollups over those rows: the adding part of totals()
    decide_s: float  # median decide_canary_step on those totals
    verdict: str
    row_bytes: int


def canary_model(replicas: int) -> str:
    return f"canary-r{replicas:04d}"


def simulate_canary(connection: str, replicas: int, scale: Scale, seed: int) -> CanaryRun:
    model = canary_model(replicas)
    production, candidate = "1.0.0", "1.1.0"
    rng = np.random.default_rng(seed + replicas)
    rows: list[WindowRollup] = []
    for w in range(scale.windows):
        start = WINDOW_BASE + w * WORKER.window_s
        for r in range(replicas):
            n = int(rng.poisson(REQUESTS_PER_REPLICA_WINDOW))
            on_candidate = int(rng.binomial(n, CANARY_WEIGHT_BP / BASIS_POINTS))
            replica = f"replica-{r:04d}"
            for version, count in ((production, n - on_candidate), (candidate, on_candidate)):
                rows.append(
                    rollup(model, version, replica=replica, window=start, requests=count, rng=rng)
                )
    row_bytes = len(json.dumps(rows[0].to_json()))

    def writer(chunk: list[WindowRollup]) -> None:
        store = MetricsStore(table_service(StorageSettings(connection_string=connection)))
        for row in chunk:
            store.write(row)

    started = time.perf_counter()
    with ThreadPoolExecutor(scale.threads) as pool:
        list(pool.map(writer, [rows[i :: scale.threads] for i in range(scale.threads)]))
    write_s = time.perf_counter() - started

    counter = RequestCounter()
    store = MetricsStore(counting_tables(connection, counter))
    end = WINDOW_BASE + scale.windows * WORKER.window_s
    reads: list[float] = []
    queries: list[float] = []
    sums: list[float] = []
    decides: list[float] = []
    verdict = ""
    plain = MetricsStore(table_service(StorageSettings(connection_string=connection)))
    for _ in range(scale.canary_reads):
        started = time.perf_counter()
        totals = store.totals(model, WINDOW_BASE, end)
        reads.append(time.perf_counter() - started)
        # The same rows read, then added, separately: how much of a look is storage + JSON and
        # how much is the merging totals() does (sum_rollups chains the same merged() calls).
        started = time.perf_counter()
        read_rows = plain.read(model, WINDOW_BASE, end)
        queries.append(time.perf_counter() - started)
        sums.append(timed(partial(sum_rollups, read_rows)))
        started = time.perf_counter()
        decision = decide_canary_step(
            totals.get(candidate),
            totals.get(production),
            weight_bp=CANARY_WEIGHT_BP,
            thresholds=THRESHOLDS,
            final_step=False,
        )
        decides.append(time.perf_counter() - started)
        verdict = decision.verdict.value
    return CanaryRun(
        replicas=replicas,
        rows=len(rows),
        write_s=write_s,
        read=stats_of(reads, counter.seen),
        query_s=float(np.median(queries)),
        sum_s=float(np.median(sums)),
        decide_s=float(np.median(decides)),
        verdict=verdict,
        row_bytes=row_bytes,
    )


def time_retention(connection: str, replicas: int, windows: int) -> tuple[float, int, int]:
    """``expire_rollups`` (the retention timer's body) on the oldest ``windows`` windows.

    Returns (seconds, rows deleted, requests sent); ``now`` is placed so that exactly those
    windows are older than the default retention.
    """
    counter = RequestCounter()
    store = MetricsStore(counting_tables(connection, counter))
    now = WINDOW_BASE + windows * WORKER.window_s + RETENTION.retention_s
    started = time.perf_counter()
    deleted = expire_rollups(
        store, [canary_model(replicas)], now=now, retention_s=RETENTION.retention_s
    )
    return time.perf_counter() - started, sum(deleted.values()), counter.seen


# -- 3. warm-up quorum ------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmRun:
    replicas: int
    status: OpStats
    live: int
    ready: bool
    beat: OpStats  # one heartbeat upsert
    heartbeat_bytes: int


def heartbeat(i: int, models: int, now: datetime, stale: bool) -> Heartbeat:
    # Each replica serves ``models`` models with production + candidate loaded and ready; the
    # probe model "warm-probe" is one of them. A stale one is older than the liveness window.
    served: dict[str, tuple[str, ...]] = {"warm-probe": ("1.0.0", "1.1.0")}
    served.update({model_name(m): ("1.0.0", "1.1.0") for m in range(models - 1)})
    at = now - timedelta(seconds=2 * POLICY.heartbeat_max_age_s) if stale else now
    return Heartbeat(
        replica=f"replica-{i:04d}",
        url=f"http://10.0.{i // 256}.{i % 256}:8000",
        provider="CUDAExecutionProvider",
        at=at,
        loaded=served,
        ready=served,
    )


def simulate_warm(connection: str, scale: Scale) -> list[WarmRun]:
    counter = RequestCounter()
    directory = WorkerDirectory(counting_tables(connection, counter))
    max_age = timedelta(seconds=POLICY.heartbeat_max_age_s)
    now = datetime.now(UTC)
    out: list[WarmRun] = []
    beats: list[float] = []
    beat_requests = 0
    written = 0
    status_of = partial(directory.warm_status, "warm-probe", "1.1.0", now, max_age)
    for target in scale.heartbeat_replicas:
        before = counter.seen
        for i in range(written, target):
            # The last replica of the largest group has stopped beating: it must not count.
            stale = target == scale.heartbeat_replicas[-1] and i == target - 1 and target > 1
            beat = heartbeat(i, scale.models_per_replica, now, stale)
            beats.append(timed(partial(directory.beat, beat)))
        beat_requests += counter.seen - before
        written = target
        status = status_of()
        before = counter.seen
        times = [timed(status_of) for _ in range(scale.canary_reads)]
        out.append(
            WarmRun(
                replicas=target,
                status=stats_of(times, counter.seen - before),
                live=len(status.live_replicas),
                ready=status.ready,
                beat=stats_of(beats, beat_requests),
                heartbeat_bytes=len(
                    json.dumps(heartbeat(0, scale.models_per_replica, now, False).to_json())
                ),
            )
        )
    return out


# -- 4. router --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterRun:
    plain_s: float  # per decision, no sticky key
    sticky_s: float
    rebuild_s: float  # effective_routes: once per poll per model
    plain_share: float  # observed candidate share
    sticky_share: float
    monotone: bool  # every key on the candidate at the weight stays there at a larger weight


def simulate_router(scale: Scale, seed: int) -> RouterRun:
    stored = Routes(
        model="router-probe",
        production="1.0.0",
        candidate="1.1.0",
        candidate_weight_bp=CANARY_WEIGHT_BP,
        sticky_header="x-user-id",
        generation=7,
    )
    ready = frozenset({"1.0.0", "1.1.0"})
    # As the worker builds it: from the stored routes and what is ready on this replica.
    table = effective_routes(stored, lambda v: v in ready, None)
    keys = [f"user-{i:06d}" for i in range(10_000)]
    n = scale.router_decisions

    def plain_round() -> tuple[float, int]:
        rng = random.Random(seed)
        hits = 0
        started = time.perf_counter()
        # The draw is part of the decision: WorkerRuntime.resolve draws one per request.
        for _ in range(n):
            hits += table.pick(None, int(rng.random() * BASIS_POINTS)) == "1.1.0"
        return (time.perf_counter() - started) / n, hits

    def sticky_round() -> tuple[float, int]:
        rng = random.Random(seed)
        hits = 0
        started = time.perf_counter()
        for i in range(n):
            hits += table.pick(keys[i % len(keys)], int(rng.random() * BASIS_POINTS)) == "1.1.0"
        return (time.perf_counter() - started) / n, hits

    def rebuild_round() -> float:
        started = time.perf_counter()
        previous: RouteTable | None = table
        for _ in range(10_000):
            previous = effective_routes(stored, lambda v: v in ready, previous)
        return (time.perf_counter() - started) / 10_000

    plain = [plain_round() for _ in range(ROUNDS)]
    sticky = [sticky_round() for _ in range(ROUNDS)]
    rebuild = [rebuild_round() for _ in range(ROUNDS)]
    wider = replace(table, candidate_weight_bp=2 * CANARY_WEIGHT_BP)
    monotone = all(
        wider.pick(k, 0) == "1.1.0" for k in keys if table.pick(k, 0) == "1.1.0"
    ) and all(
        (sticky_bucket(table.model, k) < CANARY_WEIGHT_BP) == (table.pick(k, 0) == "1.1.0")
        for k in keys
    )
    return RouterRun(
        plain_s=float(np.median([t for t, _ in plain])),
        sticky_s=float(np.median([t for t, _ in sticky])),
        rebuild_s=float(np.median(rebuild)),
        plain_share=plain[0][1] / n,
        sticky_share=sticky[0][1] / n,
        monotone=monotone,
    )


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def storage() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite", PROJECT_ROOT) as az:
        settings = StorageSettings(connection_string=az.connection_string)
        ensure_layout(blob_service(settings), table_service(settings))
        yield az.connection_string


def ratio(a: float, b: float) -> str:
    return f"x{b / a:.2f}" if a > 0 else "n/a"


@dataclass(frozen=True)
class RegistryFigures:
    models: int
    get_routes: OpStats
    list_models: OpStats
    sweep_s: float
    route_reads_per_s: float


def registry_section(out: Table, conn: str, scale: Scale) -> RegistryFigures:
    # Fill to M small and probe; fill on to M large and probe the same models again.
    small, large = scale.models_small, scale.models_large
    out.section(f"1. registry: {small} vs {large} models x {scale.versions} versions")
    names = [model_name(i) for i in range(large)]
    probes = names[: scale.probes]
    fill_registry(conn, names[:small], scale.versions, scale.threads)
    at_small = probe_registry(conn, probes, scale)
    sweep_small = worker_sweep(conn, 3)
    fill_s, fill_requests = fill_registry(conn, names[small:], scale.versions, scale.threads)
    at_large = probe_registry(conn, probes, scale)
    sweep_large = worker_sweep(conn, 3)
    lifecycles = (large - small) * scale.versions
    out.row(
        "version lifecycles through the registry",
        f"{lifecycles / fill_s:.1f} /s",
        f"{fill_requests / lifecycles:.1f} requests each (register, 3-5 transitions, 1-2 route "
        f"writes); {lifecycles} versions in {fill_s:.1f} s on {scale.threads} threads",
    )
    labels = (
        ("get_routes", "get_routes (one model)"),
        ("get_version", "get_version"),
        ("list", "list_versions (one partition)"),
        ("tr", "transition (conditional, audited)"),
        ("list_models", "list_models (scans every partition)"),
    )
    for key, label in labels:
        a, b = at_small[key], at_large[key]
        out.row(
            f"{label} p50, M={small} → {large}",
            f"{a.p50_s * 1e3:.2f} → {b.p50_s * 1e3:.2f} ms",
            f"{ratio(a.p50_s, b.p50_s)} at x{large / small:g} models; p95 {a.p95_s * 1e3:.2f} → "
            f"{b.p95_s * 1e3:.2f} ms; {a.requests_per_call:.1f} → {b.requests_per_call:.1f} "
            f"requests/call; n={b.calls}",
        )
    out.row(
        f"worker storage sweep per poll, M={small} → {large}",
        f"{ms(sweep_small[0])} → {ms(sweep_large[0])}",
        f"{ratio(sweep_small[0], sweep_large[0])}; list_models + get_routes per model, in turn, "
        f"as WorkerRuntime.sync without LEPTON_WORKER_MODELS: {sweep_large[1]} requests",
    )
    rps = route_read_throughput(conn, probes[0], scale.threads, scale.throughput_s)
    out.row(
        "get_routes throughput, one partition",
        f"{rps:,.0f} /s",
        f"{scale.threads} client threads (median of 3 x {scale.throughput_s:g} s); bound by this "
        f"2-core machine (client + Azurite), not by a partition",
    )
    return RegistryFigures(
        models=large,
        get_routes=at_large["get_routes"],
        list_models=at_large["list_models"],
        sweep_s=sweep_large[0],
        route_reads_per_s=rps,
    )


@dataclass(frozen=True)
class CanaryFigures:
    last: CanaryRun
    delete_rows_per_s: float
    delete_rows_per_request: float


def canary_section(out: Table, conn: str, scale: Scale, seed: int) -> CanaryFigures:
    out.section(
        f"2. canary analysis: {scale.windows} windows of {WORKER.window_s} s "
        f"(one {POLICY.window_s:g} s step), weight {CANARY_WEIGHT_BP / 100:g}%, "
        f"~{REQUESTS_PER_REPLICA_WINDOW} req/replica/window"
    )
    runs = [simulate_canary(conn, r, scale, seed) for r in scale.replicas]
    for run in runs:
        out.row(
            f"totals + decide_canary_step, R={run.replicas}",
            ms(run.read.p50_s + run.decide_s),
            f"{run.rows:,} rows in {requests_text(run.read.requests_per_call)}; query + parse "
            f"{ms(run.query_s)}, sums {ms(run.sum_s)}, decision "
            f"{ms(run.decide_s)} → {run.verdict}; rows written at {run.rows / run.write_s:,.0f}/s",
        )
    first, last = runs[0], runs[-1]
    per_row = (last.read.p50_s - first.read.p50_s) / max(last.rows - first.rows, 1)
    out.row(
        f"canary look cost, R={first.replicas} → {last.replicas}",
        ratio(first.read.p50_s + first.decide_s, last.read.p50_s + last.decide_s),
        f"linear in rows: ~{per_row * 1e6:.0f} µs per rollup row read and summed; the decision "
        f"itself {ratio(first.decide_s, last.decide_s)} (it sees only the totals)",
    )
    windows_per_day = 86_400 // WORKER.window_s
    rows_day = windows_per_day * 2 * last.replicas
    days = RETENTION.retention_hours / 24
    out.row(
        "metrics rows per model per day",
        f"{windows_per_day * 2:,} x R",
        f"{windows_per_day:,} windows x 2 versions (canary; steady state: half) x R: "
        f"R={last.replicas} → {rows_day:,}/day, {rows_day * last.row_bytes / 1e9:.2f} GB at "
        f"{last.row_bytes} B/row; kept {RETENTION.retention_hours} h → up to "
        f"{rows_day * days / 1e6:.1f} M rows per model",
    )
    purge_s, purged, purge_requests = time_retention(conn, last.replicas, scale.windows // 2)
    rate = purged / purge_s if purge_s > 0 else math.nan
    out.row(
        "retention: expire_rollups",
        f"{rate:,.0f} rows/s",
        f"{purged:,} rows of R={last.replicas} in {ms(purge_s)} with {purge_requests} requests "
        f"(entity-group batches); the timer runs '{RETENTION.schedule}'",
    )
    return CanaryFigures(
        last=last,
        delete_rows_per_s=rate,
        delete_rows_per_request=purged / max(purge_requests, 1),
    )


def warm_section(out: Table, conn: str, scale: Scale) -> WarmRun:
    out.section(
        f"3. warm-up quorum: heartbeats listing {scale.models_per_replica} models x 2 versions"
    )
    warm = simulate_warm(conn, scale)
    for w in warm:
        out.row(
            f"warm_status, R={w.replicas}",
            ms(w.status.p50_s),
            f"p95 {ms(w.status.p95_s)}; {requests_text(w.status.requests_per_call)}; live "
            f"{w.live}/{w.replicas}, ready={w.ready}",
        )
    out.row(
        f"warm_status cost, R={warm[0].replicas} → {warm[-1].replicas}",
        ratio(warm[0].status.p50_s, warm[-1].status.p50_s),
        f"heartbeat upsert p50 {ms(warm[-1].beat.p50_s)}, {warm[-1].heartbeat_bytes} B; all "
        "replicas share the one 'replica' partition (one stale beat, not live, at the largest R)",
    )
    return warm[-1]


def router_section(out: Table, scale: Scale, seed: int) -> None:
    out.section(f"4. router: RouteTable.pick at {CANARY_WEIGHT_BP / 100:g}% candidate")
    router = simulate_router(scale, seed)
    for label, per, share in (
        ("pick, no sticky key", router.plain_s, router.plain_share),
        ("pick, sticky key (BLAKE2b bucket)", router.sticky_s, router.sticky_share),
    ):
        out.row(
            label,
            f"{1 / per / 1e6:.2f} M/s",
            f"{per * 1e6:.2f} µs incl. the draw = {per / 1e-3:.2%} of a 1 ms request budget; "
            f"candidate share {share:.2%} (median of {ROUNDS} x {scale.router_decisions:,})",
        )
    out.row(
        "effective_routes rebuild",
        f"{router.rebuild_s * 1e6:.2f} µs",
        f"once per model per poll; sticky buckets monotone in the weight: {router.monotone}",
    )


def planning_section(
    out: Table,
    scale: Scale,
    registry: RegistryFigures,
    canary: CanaryFigures,
    warm: WarmRun,
) -> None:
    out.section(
        f"5. planning vs Azure Table's documented scalability targets: "
        f"{AZURE_PARTITION_ENTITIES_PER_S:,} entities/s per partition, "
        f"{AZURE_ACCOUNT_TX_PER_S:,} transactions/s per account"
    )
    poll, m = WORKER.poll_interval_s, registry.models
    out.row(
        "route reads per model partition",
        f"R / {poll:g} s",
        f"one unconditional get_routes per model per replica per poll: the partition target "
        f"allows {AZURE_PARTITION_ENTITIES_PER_S * poll:,.0f} replicas per model (this machine: "
        f"~{registry.route_reads_per_s * poll:,.0f})",
    )
    account_rm = AZURE_ACCOUNT_TX_PER_S * poll
    out.row(
        "route reads per storage account",
        f"R x M / {poll:g} s",
        f"≤ {AZURE_ACCOUNT_TX_PER_S:,}/s → R x M ≤ {account_rm:,.0f}: at M={m}, R ≤ "
        f"{account_rm / m:,.0f} if every replica serves every model (LEPTON_WORKER_MODELS "
        "per replica group lifts it)",
    )
    scan_entities = m * scale.versions
    out.row(
        "version rows scanned per poll per replica",
        f"{scan_entities:,}",
        f"list_models with no model filter reads every version row (M x V) every poll: "
        f"{requests_text(registry.list_models.requests_per_call)}, "
        f"{ms(registry.list_models.p50_s)} "
        f"here; x R / {poll:g} s against the account",
    )
    out.row(
        "models one replica can sweep per poll",
        f"~{poll / registry.get_routes.p50_s:,.0f}",
        f"{poll:g} s / get_routes p50 {ms(registry.get_routes.p50_s)}, reads in turn; at M={m} "
        f"the sweep takes {registry.sweep_s / poll:.0%} of the poll here (scale by Azure's "
        "round trip, not Azurite's)",
    )
    out.row(
        "heartbeat writes (one partition for all)",
        f"R / {WORKER.heartbeat_s:g} s",
        f"partition target allows {AZURE_PARTITION_ENTITIES_PER_S * WORKER.heartbeat_s:,.0f} "
        f"replicas; warm_status reads all R rows ({ms(warm.status.p50_s)} at R={warm.replicas}) "
        f"every {POLICY.warmup_poll_s:g} s per rollout",
    )
    metric_writes = 2 / WORKER.flush_s  # per replica per model in canary: both versions
    out.row(
        "metric upserts per model partition (canary)",
        f"{metric_writes:g} x R /s",
        f"2 versions flushed every {WORKER.flush_s:g} s per replica → the partition target "
        f"allows R ≤ {AZURE_PARTITION_ENTITIES_PER_S / metric_writes:,.0f} per model in canary",
    )
    last = canary.last
    look_s = last.rows / AZURE_PARTITION_ENTITIES_PER_S
    out.row(
        f"entities read by a step's last look, R={last.replicas}",
        f"{last.rows:,}",
        f"R x {scale.windows} windows x 2 versions = {look_s:.1f} s of one partition's target; "
        f"{ms(last.read.p50_s + last.decide_s)} here, a look "
        f"every {POLICY.check_interval_s:g} s",
    )
    # Steady state (production only): each replica adds one row per model per window; an hourly
    # run has to delete an hour of them, visiting the models one after another.
    hour_rows = 3600 // WORKER.window_s
    breakeven = canary.delete_rows_per_s * 3600 / hour_rows
    for rm in (1_000, int(account_rm)):
        rows = hour_rows * rm
        out.row(
            f"hourly retention run, R x M = {rm:,}",
            ms(rows / canary.delete_rows_per_s),
            f"{rows:,} rows/h (production only) in ~{rows / canary.delete_rows_per_request:,.0f} "
            f"requests at the measured {canary.delete_rows_per_s:,.0f} rows/s; one run keeps up "
            f"while R x M ≤ ~{breakeven:,.0f}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scale (under a minute)")
    parser.add_argument("--seed", type=int, default=20_240_601)
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else DEFAULT
    out = Table()
    began = time.perf_counter()
    print(
        f"scale simulation on Azurite ({'quick' if args.quick else 'default'} scale); worker "
        f"poll {WORKER.poll_interval_s:g} s, heartbeat {WORKER.heartbeat_s:g} s, flush "
        f"{WORKER.flush_s:g} s, window {WORKER.window_s} s; policy window {POLICY.window_s:g} s, "
        f"look every {POLICY.check_interval_s:g} s, warm-up poll {POLICY.warmup_poll_s:g} s"
    )
    with storage() as conn:
        out.start()
        registry = registry_section(out, conn, scale)
        canary = canary_section(out, conn, scale, args.seed)
        warm = warm_section(out, conn, scale)
    router_section(out, scale, args.seed)  # in-process: no storage
    planning_section(out, scale, registry, canary, warm)
    print(
        "Azurite latency is not Azure latency: compare the ratios and request counts, not the "
        f"milliseconds. Total {time.perf_counter() - began:.0f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
