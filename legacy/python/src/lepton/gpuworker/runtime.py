"""The worker's core: follows the registry, routes and runs requests, reports what happened.

Background tasks (all off the request path) poll each served model's routes and versions, start
loads of the versions the routes need, apply only ready versions to the router (a swap switches
once the new version is warm), unload idle versions after the grace period, publish heartbeats and
write the per-window rollups. :meth:`WorkerRuntime.infer` is what the HTTP layer calls: pick a
version, check the tensors, run them through the version's batcher, count the outcome, and maybe
mirror the request to the shadow version after the caller's answer is ready.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from lepton.gpuworker.errors import InferenceFailed, ModelNotReady, NonFiniteOutput
from lepton.gpuworker.observability import WorkerMetrics
from lepton.gpuworker.pool import Key, SlotState, VersionPool
from lepton.gpuworker.protocol import InferRequest
from lepton.gpuworker.providers import ProviderChoice
from lepton.gpuworker.rollups import RollupRecorder
from lepton.gpuworker.router import RouteTable, effective_routes
from lepton.gpuworker.served import ServedVersion
from lepton.gpuworker.session import ItemResult
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import InvalidInput, LeptonError, ModelNotFound, NotFound
from lepton.shared.lifecycle import Stage
from lepton.shared.metrics import MetricsStore
from lepton.shared.model_store import ModelStore
from lepton.shared.records import BASIS_POINTS, Routes
from lepton.shared.registry import Registry
from lepton.shared.workers import Heartbeat, WorkerDirectory

log = logging.getLogger("lepton.gpuworker")


@dataclass(frozen=True)
class InferOutcome:
    version: str
    result: ItemResult
    order: tuple[str, ...]  # the model's output names, in declaration order
    # Starts the shadow copy, if this request is mirrored; the HTTP layer calls it only after
    # the caller's response is sent, so mirroring never adds to the caller's latency.
    mirror: Callable[[], Awaitable[None]] | None = None


@dataclass
class _ModelState:
    stored: Routes
    last_known_good: str | None = None


class WorkerRuntime:
    """Everything a replica does besides HTTP; created and started by the app's lifespan."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        registry: Registry,
        store: ModelStore,
        metrics_store: MetricsStore,
        directory: WorkerDirectory,
        choice: ProviderChoice,
        opentelemetry: bool = False,
    ) -> None:
        self.settings = settings
        self.choice = choice
        self.replica = settings.replica
        self._registry = registry
        self._metrics_store = metrics_store
        self._directory = directory
        self.metrics = WorkerMetrics(self.replica, choice.name, opentelemetry=opentelemetry)
        self.rollups = RollupRecorder(self.replica, settings.window_s)
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, settings.batch_concurrency), thread_name_prefix="lepton-ort"
        )
        self.pool = VersionPool(
            registry=registry,
            store=store,
            choice=choice,
            executor=self._executor,
            metrics=self.metrics,
            settings=settings,
            on_change=self._refresh_routes,
        )
        self._models: dict[str, _ModelState] = {}
        self.tables: dict[str, RouteTable] = {}
        self._rng = random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.synced = asyncio.Event()
        self.draining = False
        self.in_flight = 0

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.synced.is_set() and not self.draining

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.settings.poll_interval_s, self.sync), name="sync"),
            loop.create_task(self._every(self.settings.heartbeat_s, self.beat), name="heartbeat"),
            loop.create_task(self._every(self.settings.flush_s, self.flush), name="rollups"),
        ]

    async def stop(self) -> None:
        """Drain: readiness off, wait for in-flight requests, final rollups and heartbeat."""
        self.draining = True
        deadline = time.monotonic() + 30.0
        while (self.in_flight or self._shadow_tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for step in (self.flush, self.beat):
            try:
                await step()
            except Exception as err:
                log.warning("final %s failed: %s", step.__name__, err)
        await self.pool.aclose()
        self._executor.shutdown(wait=True)

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # Storage hiccups must not kill the loop; the next round retries.
                log.warning("background step %s failed: %s", getattr(step, "__name__", step), err)
            await asyncio.sleep(interval)

    # -- following the registry ---------------------------------------------------------------

    async def sync(self) -> None:
        """One poll: read routes, load what they need, apply ready versions, unload idle ones."""
        models = self.settings.models or tuple(await asyncio.to_thread(self._registry.list_models))
        for model in models:
            stored = await asyncio.to_thread(self._registry.get_routes, model)
            state = self._models.get(model)
            if state is None or state.stored.etag != stored.etag:
                lkg = await asyncio.to_thread(self._last_known_good, model)
                state = self._models[model] = _ModelState(stored, lkg)
            for version in self._wanted(state):
                self.pool.request_load(model, version)
        for gone in set(self._models) - set(models):
            del self._models[gone]
            self.tables.pop(gone, None)
        self._protect()
        for model in list(self._models):
            self._refresh_routes(model)
        await self.pool.unload_idle(self.settings.unload_grace_s)
        self.synced.set()

    def _last_known_good(self, model: str) -> str | None:
        """The most recently superseded version: what a rollback after promotion goes back to."""
        superseded = [v for v in self._registry.list_versions(model) if v.stage is Stage.SUPERSEDED]
        return max(superseded, key=lambda v: v.updated).version if superseded else None

    @staticmethod
    def _wanted(state: _ModelState) -> list[str]:
        r = state.stored
        # The candidate loads even at weight 0: the lifecycle waits for it to be warm everywhere
        # before giving it traffic.
        wanted = [v for v in (r.production, r.candidate, r.shadow, state.last_known_good) if v]
        return list(dict.fromkeys(wanted))

    def _protect(self) -> None:
        protected: dict[Key, str] = {}
        for model, state in self._models.items():
            r = state.stored
            roles = (
                ("production", r.production),
                ("candidate", r.candidate),
                ("shadow", r.shadow),
                ("last known-good", state.last_known_good),
            )
            for role, version in roles:
                if version:
                    protected.setdefault((model, version), role)
            table = self.tables.get(model)
            if table is not None:
                for version in (table.production, table.candidate, table.shadow):
                    if version:
                        protected.setdefault((model, version), "serving")
        self.pool.protect(protected)

    def _refresh_routes(self, model: str) -> None:
        state = self._models.get(model)
        if state is None:
            return
        table = effective_routes(
            state.stored, lambda v: self.pool.is_ready(model, v), self.tables.get(model)
        )
        self.tables[model] = table

    # -- reporting ----------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            replica=self.replica,
            url=self.settings.advertised_url,
            provider=self.choice.name,
            at=datetime.now(UTC),
            loaded=self.pool.versions(),
            ready=self.pool.versions(SlotState.READY),
            draining=self.draining,
        )

    async def beat(self) -> None:
        await asyncio.to_thread(self._directory.beat, self.heartbeat())

    async def flush(self) -> None:
        for rollup in self.rollups.take_dirty():
            await asyncio.to_thread(self._metrics_store.write, rollup)

    # -- serving ------------------------------------------------------------------------------

    async def resolve(self, model: str, version: str | None, sticky: str | None) -> ServedVersion:
        """The ready version that serves this request, or 404/503 saying why not."""
        if version is None:
            table = self.tables.get(model)
            if table is None:
                raise ModelNotFound(
                    f"model {model!r} is not served by this worker; served: "
                    f"{sorted(self.tables) or 'none yet'}"
                )
            chosen = table.pick(sticky, int(self._rng.random() * BASIS_POINTS))
            if chosen is None:
                raise ModelNotReady(f"model {model!r} has no ready version yet; retry shortly")
            served = self.pool.get_ready(model, chosen)
            if served is not None:
                return served
            version = chosen
        served = self.pool.get_ready(model, version)
        if served is not None:
            return served
        raise await self.not_ready_error(model, version)

    async def not_ready_error(self, model: str, version: str) -> LeptonError:
        slot = self.pool.slot(model, version)
        if slot is None:
            try:
                record = await asyncio.to_thread(self._registry.get_version, model, version)
            except NotFound as err:
                return err
            if record.stage in (Stage.REJECTED,):
                return ModelNotReady(
                    f"{model} {version} was rejected ({record.reason}); it is not served",
                    retry_after_s=60,
                )
            # Pinned requests may reach any registered version: load it on demand.
            slot = self.pool.request_load(model, version)
        if slot.state is SlotState.FAILED:
            return ModelNotReady(
                f"{model} {version} could not be loaded: {slot.error}", retry_after_s=10
            )
        return ModelNotReady(f"{model} {version} is loading; retry shortly", retry_after_s=1)

    async def infer(
        self,
        model: str,
        version: str | None,
        request: InferRequest,
        sticky: str | None = None,
    ) -> InferOutcome:
        """Serve one request; every outcome is counted for the version that handled it."""
        started = time.perf_counter()
        served = await self.resolve(model, version, sticky)
        try:
            return await self._infer_on(served, model, version is None, request, started)
        except LeptonError as err:
            # Lets the HTTP layer name the version in the error response's headers.
            err.add_note(f"x-lepton-version: {served.version}")
            raise

    async def _infer_on(
        self,
        served: ServedVersion,
        model: str,
        routed: bool,
        request: InferRequest,
        started: float,
    ) -> InferOutcome:
        onnx = served.onnx
        try:
            item = onnx.prepare(request.inputs)
            known = {o.name for o in onnx.outputs}
            unknown = [o.name for o in request.outputs if o.name not in known]
            if unknown:
                raise InvalidInput(
                    f"{model} {served.version}: requested outputs {unknown} do not exist; "
                    f"expected signature {onnx.signature_text}"
                )
        except InvalidInput:
            self.metrics.request(model, served.version, "invalid", time.perf_counter() - started)
            raise
        try:
            result = await served.infer(item)
        except LeptonError:
            self._count_failure(model, served.version, routed, started)
            raise
        except Exception as err:
            self._count_failure(model, served.version, routed, started)
            raise InferenceFailed(f"{model} {served.version}: inference failed: {err}") from err
        latency_s = time.perf_counter() - started
        bad = result.nonfinite and self.settings.nonfinite_is_error
        self.rollups.record(
            model,
            served.version,
            routed=routed,
            error=bad,
            nonfinite=result.nonfinite,
            rows=item.rows,
            latency_ms=latency_s * 1000.0,
            compute_ms=result.compute_ms,
            scores=result.scores,
        )
        self.metrics.request(
            model, served.version, "nonfinite" if result.nonfinite else "ok", latency_s
        )
        if bad:
            raise NonFiniteOutput(
                f"{model} {served.version} produced non-finite output (NaN or inf); the result "
                "was withheld and counted as an error for this version"
            )
        mirror = (
            self._mirror(model, served.version, request, result, latency_s * 1000.0)
            if routed
            else None
        )
        return InferOutcome(served.version, result, tuple(o.name for o in onnx.outputs), mirror)

    def _count_failure(self, model: str, version: str, routed: bool, started: float) -> None:
        latency_s = time.perf_counter() - started
        self.rollups.record(
            model, version, routed=routed, error=True, latency_ms=latency_s * 1000.0
        )
        self.metrics.request(model, version, "error", latency_s)

    # -- shadow -------------------------------------------------------------------------------

    def _mirror(
        self, model: str, served: str, request: InferRequest, result: ItemResult, prod_ms: float
    ) -> Callable[[], Awaitable[None]] | None:
        """A starter for this request's shadow copy, or None if it is not sampled."""
        table = self.tables.get(model)
        if table is None or table.shadow is None:
            return None
        shadow = table.mirrors(int(self._rng.random() * BASIS_POINTS), served)
        if shadow is None:
            return None

        async def start() -> None:
            # Fire and forget: the caller's connection is not held while the shadow runs.
            if len(self._shadow_tasks) >= self.settings.max_shadow_in_flight:
                self.metrics.shadow_dropped.labels(model).inc()
                return
            task = asyncio.get_running_loop().create_task(
                self._shadow(model, shadow, request, result.top1, prod_ms)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

        return start

    async def _shadow(
        self,
        model: str,
        version: str,
        request: InferRequest,
        prod_top1: np.ndarray,
        prod_ms: float,
    ) -> None:
        """Run the mirrored copy; its result is only compared and counted, never returned."""
        started = time.perf_counter()
        served = self.pool.get_ready(model, version)
        if served is None:
            return
        try:
            item = served.onnx.prepare(request.inputs)
            result = await served.infer(item)
        except Exception:
            self._count_failure(model, version, False, started)
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        bad = result.nonfinite and self.settings.nonfinite_is_error
        self.rollups.record(
            model,
            version,
            routed=False,
            error=bad,
            nonfinite=result.nonfinite,
            rows=item.rows,
            latency_ms=latency_ms,
            compute_ms=result.compute_ms,
            scores=result.scores,
        )
        self.metrics.request(
            model, version, "nonfinite" if result.nonfinite else "ok", latency_ms / 1000.0
        )
        flipped = result.top1.shape != prod_top1.shape or not np.array_equal(result.top1, prod_top1)
        self.rollups.record_shadow_pair(
            model, version, flipped=bool(flipped), latency_diff_ms=latency_ms - prod_ms
        )
