"""Typed settings of the inference worker, read from ``LEPTON_WORKER_*`` environment variables once.

Every variable has a default that runs a single local replica; a malformed value fails fast with
the variable's name and what is allowed. :data:`WORKER_SETTING_NAMES` lists every variable the
worker reads (plus the storage and model-store ones from :mod:`lepton.shared.settings`) so the
Bicep test can check that the container app sets what is required.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from lepton.shared.errors import ConfigurationError
from lepton.shared.names import validate_model_name
from lepton.shared.settings import APP_SETTING_NAMES

_P = "LEPTON_WORKER_"
PROVIDER_CHOICES = ("auto", "cpu", "cuda")
ARENA_STRATEGIES = ("kNextPowerOfTwo", "kSameAsRequested")

# The worker's own variables, in the order of the dataclass fields below.
_OWN_NAMES: tuple[str, ...] = tuple(
    _P + n
    for n in (
        "HOST",
        "PORT",
        "URL",
        "REPLICA_ID",
        "MODELS",
        "POLL_INTERVAL_S",
        "HEARTBEAT_S",
        "WINDOW_S",
        "FLUSH_S",
        "MEMORY_BUDGET_MB",
        "UNLOAD_GRACE_S",
        "MAX_BODY_BYTES",
        "PROVIDER",
        "CUDA_DEVICE_ID",
        "CUDA_MEM_LIMIT_MB",
        "CUDA_ARENA_EXTEND_STRATEGY",
        "INTRA_OP_THREADS",
        "INTER_OP_THREADS",
        "BATCH_CONCURRENCY",
        "INLINE_BELOW_MS",
        "NONFINITE_IS_ERROR",
        "DRAIN_S",
        "MAX_SHADOW_IN_FLIGHT",
    )
)
WORKER_SETTING_NAMES: tuple[str, ...] = _OWN_NAMES + APP_SETTING_NAMES

_T = TypeVar("_T", int, float)


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker replica serves, loads and reports."""

    host: str = "127.0.0.1"
    port: int = 8000
    url: str = ""  # advertised in heartbeats; empty = http://{host or hostname}:{port}
    replica_id: str = ""  # empty = "{hostname}-{port}"
    models: tuple[str, ...] = ()  # empty = every model that has routes
    poll_interval_s: float = 2.0
    heartbeat_s: float = 3.0
    window_s: int = 10
    flush_s: float = 2.0
    memory_budget_mb: int = 4096
    unload_grace_s: float = 60.0
    max_body_bytes: int = 64 * 1024 * 1024
    provider: str = "auto"
    cuda_device_id: int = 0
    cuda_mem_limit_mb: int = 0  # 0 = no limit beyond the device's memory
    cuda_arena_extend_strategy: str = "kNextPowerOfTwo"
    intra_op_threads: int = 0  # 0 = one per CPU this process may run on
    inter_op_threads: int = 1
    batch_concurrency: int = 2  # batches of one version running at the same time
    inline_below_ms: float = 0.3  # run a batch on the event loop when it is cheaper than a hop
    nonfinite_is_error: bool = True
    drain_s: float = 1.0
    max_shadow_in_flight: int = 64

    @property
    def advertised_url(self) -> str:
        if self.url:
            return self.url
        # A wildcard bind address is not somewhere anyone can connect to: name the machine.
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def replica(self) -> str:
        return self.replica_id or f"{socket.gethostname()}-{self.port}"

    @property
    def effective_intra_op_threads(self) -> int:
        if self.intra_op_threads > 0:
            return self.intra_op_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        source: Mapping[str, str] = os.environ if env is None else env
        d = cls()

        def text(name: str, default: str) -> str:
            return source.get(_P + name, "").strip() or default

        def number(name: str, kind: Callable[[str], _T], default: _T, minimum: _T) -> _T:
            raw = source.get(_P + name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigurationError(
                    f"{_P}{name} must be a {kind.__name__}, got {raw!r}"
                ) from None
            if value < minimum:
                raise ConfigurationError(f"{_P}{name} must be ≥ {minimum}, got {raw!r}")
            return value

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = text(name, default)
            if value not in allowed:
                raise ConfigurationError(f"{_P}{name} must be one of {allowed}, got {value!r}")
            return value

        raw_bool = text("NONFINITE_IS_ERROR", "true").lower()
        if raw_bool not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigurationError(f"{_P}NONFINITE_IS_ERROR must be true or false")
        models_raw = text("MODELS", "")
        try:
            models = tuple(
                validate_model_name(m.strip()) for m in models_raw.split(",") if m.strip()
            )
        except Exception as err:
            raise ConfigurationError(f"{_P}MODELS: {err}") from None
        return cls(
            host=text("HOST", d.host),
            port=number("PORT", int, d.port, 0),
            url=text("URL", d.url),
            replica_id=text("REPLICA_ID", d.replica_id),
            models=models,
            poll_interval_s=number("POLL_INTERVAL_S", float, d.poll_interval_s, 0.05),
            heartbeat_s=number("HEARTBEAT_S", float, d.heartbeat_s, 0.05),
            window_s=number("WINDOW_S", int, d.window_s, 1),
            flush_s=number("FLUSH_S", float, d.flush_s, 0.05),
            memory_budget_mb=number("MEMORY_BUDGET_MB", int, d.memory_budget_mb, 1),
            unload_grace_s=number("UNLOAD_GRACE_S", float, d.unload_grace_s, 0.0),
            max_body_bytes=number("MAX_BODY_BYTES", int, d.max_body_bytes, 1024),
            provider=choice("PROVIDER", d.provider, PROVIDER_CHOICES),
            cuda_device_id=number("CUDA_DEVICE_ID", int, d.cuda_device_id, 0),
            cuda_mem_limit_mb=number("CUDA_MEM_LIMIT_MB", int, d.cuda_mem_limit_mb, 0),
            cuda_arena_extend_strategy=choice(
                "CUDA_ARENA_EXTEND_STRATEGY", d.cuda_arena_extend_strategy, ARENA_STRATEGIES
            ),
            intra_op_threads=number("INTRA_OP_THREADS", int, d.intra_op_threads, 0),
            inter_op_threads=number("INTER_OP_THREADS", int, d.inter_op_threads, 1),
            batch_concurrency=number("BATCH_CONCURRENCY", int, d.batch_concurrency, 1),
            inline_below_ms=number("INLINE_BELOW_MS", float, d.inline_below_ms, 0.0),
            nonfinite_is_error=raw_bool in ("true", "1", "yes"),
            drain_s=number("DRAIN_S", float, d.drain_s, 0.0),
            max_shadow_in_flight=number("MAX_SHADOW_IN_FLIGHT", int, d.max_shadow_in_flight, 0),
        )
