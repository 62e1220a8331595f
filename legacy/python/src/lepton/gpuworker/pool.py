"""The versions resident on this replica: loading, warm-up, the memory budget and unloading.

A version is loaded from the model store (cached locally by sha256), its footprint estimated from
its initializers *before* ONNX Runtime sees it, warmed up with one inference and only then marked
ready. When the budget cannot hold it, idle versions that carry no traffic are evicted least
recently used first; versions the routes use (production, candidate, shadow) and the last
known-good version are protected. If it still does not fit, the load is refused with a reason that
names what is resident, rather than running the process out of memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum

from lepton.gpuworker.errors import LoadRefused
from lepton.gpuworker.observability import WorkerMetrics
from lepton.gpuworker.providers import ProviderChoice
from lepton.gpuworker.served import ServedVersion
from lepton.gpuworker.session import OnnxVersion, estimate_footprint
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.manifest import Batching
from lepton.shared.model_store import ModelStore
from lepton.shared.registry import Registry

log = logging.getLogger("lepton.gpuworker")
_MIB = 1024 * 1024
# A failed load is retried after this long, so a broken version does not hammer storage.
RETRY_FAILED_S = 10.0

Key = tuple[str, str]


class SlotState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class Slot:
    model: str
    version: str
    state: SlotState = SlotState.LOADING
    footprint: int = 0
    served: ServedVersion | None = None
    error: str = ""
    last_used: float = 0.0
    failed_at: float = 0.0


class VersionPool:
    """Loads, holds and unloads :class:`ServedVersion` objects within a memory budget."""

    def __init__(
        self,
        *,
        registry: Registry,
        store: ModelStore,
        choice: ProviderChoice,
        executor: Executor,
        metrics: WorkerMetrics,
        settings: WorkerSettings,
        on_change: Callable[[str], None] = lambda _model: None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._choice = choice
        self._executor = executor
        self._metrics = metrics
        self._settings = settings
        self._on_change = on_change
        self._slots: dict[Key, Slot] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._protected: dict[Key, str] = {}  # key → why (shown in refusals)
        self.budget = settings.memory_budget_mb * _MIB

    # -- lookups ------------------------------------------------------------------------------

    def get_ready(self, model: str, version: str) -> ServedVersion | None:
        slot = self._slots.get((model, version))
        if slot is None or slot.state is not SlotState.READY:
            return None
        slot.last_used = time.monotonic()
        return slot.served

    def is_ready(self, model: str, version: str) -> bool:
        slot = self._slots.get((model, version))
        return slot is not None and slot.state is SlotState.READY

    def slot(self, model: str, version: str) -> Slot | None:
        return self._slots.get((model, version))

    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def versions(self, state: SlotState | None = None) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for slot in self._slots.values():
            if (state is None and slot.state is not SlotState.FAILED) or slot.state is state:
                out.setdefault(slot.model, []).append(slot.version)
        return {m: tuple(sorted(v)) for m, v in out.items()}

    @property
    def used(self) -> int:
        return sum(s.footprint for s in self._slots.values() if s.state is not SlotState.FAILED)

    # -- loading ------------------------------------------------------------------------------

    def protect(self, protected: dict[Key, str]) -> None:
        """Replace the set of versions that must never be evicted (key → role)."""
        self._protected = dict(protected)

    def request_load(self, model: str, version: str) -> Slot:
        """Start loading ``model``/``version`` unless it is loaded, loading or failed recently."""
        key = (model, version)
        slot = self._slots.get(key)
        if slot is not None and (
            slot.state is not SlotState.FAILED or time.monotonic() - slot.failed_at < RETRY_FAILED_S
        ):
            return slot
        slot = self._slots[key] = Slot(model, version, last_used=time.monotonic())
        self._tasks[key] = asyncio.get_running_loop().create_task(self._load(slot))
        return slot

    async def _load(self, slot: Slot) -> None:
        key = (slot.model, slot.version)
        try:
            record = await asyncio.to_thread(self._registry.get_version, *key)
            path = await asyncio.to_thread(self._store.download_model, *key, record.sha256)
            manifest = await asyncio.to_thread(self._store.get_manifest, *key)
            batching = manifest.batching if manifest is not None else Batching()
            footprint = await asyncio.to_thread(estimate_footprint, path)
            await self._reserve(slot, footprint)
            onnx_version = await asyncio.to_thread(
                OnnxVersion,
                slot.model,
                slot.version,
                path,
                self._choice,
                max_batch_size=batching.max_batch_size,
            )
            warm = onnx_version.warm_up_item()
            results = await asyncio.to_thread(onnx_version.run_items, [warm])
            slot.served = ServedVersion(
                onnx_version,
                self._executor,
                self._metrics,
                max_delay_s=batching.max_delay_ms / 1000.0,
                max_concurrent_batches=self._settings.batch_concurrency,
                inline_below_ms=self._settings.inline_below_ms,
                warm_compute_ms=results[0].compute_ms,
                footprint=footprint,
            )
            slot.state = SlotState.READY
            slot.last_used = time.monotonic()
            self._metrics.ready.labels(*key).set(1)
            log.info("%s %s ready (%.1f MiB)", slot.model, slot.version, footprint / _MIB)
        except asyncio.CancelledError:
            self._slots.pop(key, None)
            raise
        except Exception as err:
            slot.state = SlotState.FAILED
            slot.error = str(err)
            slot.failed_at = time.monotonic()
            slot.footprint = 0
            log.warning("loading %s %s failed: %s", slot.model, slot.version, err)
        finally:
            self._tasks.pop(key, None)
        self._on_change(slot.model)

    async def _reserve(self, slot: Slot, footprint: int) -> None:
        """Make room for ``footprint`` bytes by evicting idle unprotected versions, or refuse."""
        others = [s for s in self._slots.values() if s is not slot]
        used = sum(s.footprint for s in others if s.state is not SlotState.FAILED)
        if used + footprint > self.budget:
            evictable = sorted(
                (
                    s
                    for s in others
                    if s.state is SlotState.READY and (s.model, s.version) not in self._protected
                ),
                key=lambda s: s.last_used,
            )
            victims: list[Slot] = []
            for victim in evictable:
                if used + footprint <= self.budget:
                    break
                victims.append(victim)
                used -= victim.footprint
            if used + footprint > self.budget:
                resident = (
                    ", ".join(
                        f"{s.model} {s.version} {s.footprint / _MIB:.0f} MiB"
                        + (
                            f" ({self._protected[(s.model, s.version)]})"
                            if (s.model, s.version) in self._protected
                            else ""
                        )
                        for s in others
                        if s.state is not SlotState.FAILED
                    )
                    or "nothing"
                )
                raise LoadRefused(
                    f"{slot.model} {slot.version} needs about {footprint / _MIB:.0f} MiB but only "
                    f"{(self.budget - used) / _MIB:.0f} MiB of the "
                    f"{self.budget / _MIB:.0f} MiB budget (LEPTON_WORKER_MEMORY_BUDGET_MB) can be "
                    f"freed; resident: {resident}. Raise the budget, retire versions, or spread "
                    "models over more replicas",
                    retry_after_s=int(RETRY_FAILED_S),
                )
            for victim in victims:
                log.info("evicting %s %s to make room", victim.model, victim.version)
                await self.unload(victim.model, victim.version)
        slot.footprint = footprint

    # -- unloading ----------------------------------------------------------------------------

    async def unload(self, model: str, version: str) -> None:
        """Forget a version; requests already holding it finish on it (nothing is cut short)."""
        slot = self._slots.pop((model, version), None)
        task = self._tasks.pop((model, version), None)
        if task is not None:
            task.cancel()
        self._metrics.ready.labels(model, version).set(0)
        if slot is not None and slot.served is not None:
            await slot.served.aclose()
        self._on_change(model)

    async def unload_idle(self, grace_s: float) -> list[Key]:
        """Unload ready versions that are unprotected and unused for ``grace_s``."""
        now = time.monotonic()
        idle = [
            (s.model, s.version)
            for s in self._slots.values()
            if s.state is not SlotState.LOADING
            and (s.model, s.version) not in self._protected
            and now - s.last_used >= grace_s
        ]
        for key in idle:
            await self.unload(*key)
        return idle

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for key in list(self._slots):
            await self.unload(*key)
