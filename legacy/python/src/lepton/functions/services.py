"""The composition of storage-backed services the bindings use, built once from the environment.

Bindings call :func:`get_services`; tests (and the local stack) install their own with
:func:`set_services` instead of patching anything. :func:`configure_app_telemetry` is the app's
OpenTelemetry setup, called by ``function_app.py`` and by the local stack that hosts the app.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lepton.shared.metrics import MetricsStore
from lepton.shared.model_store import BlobModelStore
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import ModelStoreSettings, StorageSettings
from lepton.shared.storage import blob_service, table_service
from lepton.shared.telemetry import Telemetry, TelemetrySettings, configure_telemetry
from lepton.shared.workers import WorkerDirectory

# service.name of the Functions app's traces and metrics (the worker reports as lepton-gpuworker).
TELEMETRY_SERVICE_NAME = "lepton-functions"


@dataclass(frozen=True)
class Services:
    registry: TableRegistry
    store: BlobModelStore
    metrics: MetricsStore
    workers: WorkerDirectory

    @classmethod
    def from_settings(
        cls, storage: StorageSettings, store: ModelStoreSettings | None = None
    ) -> Services:
        tables = table_service(storage)
        return cls(
            registry=TableRegistry(tables),
            store=BlobModelStore(blob_service(storage), store or ModelStoreSettings()),
            metrics=MetricsStore(tables),
            workers=WorkerDirectory(tables),
        )

    @classmethod
    def from_env(cls) -> Services:
        return cls.from_settings(StorageSettings.from_env(), ModelStoreSettings.from_env())


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, built from the environment on first use."""
    global _services  # noqa: PLW0603 - the one process-wide composition, built lazily
    with _lock:
        if _services is None:
            _services = Services.from_env()
        return _services


def set_services(services: Services | None) -> None:
    """Install (or with ``None`` forget) the process-wide services."""
    global _services  # noqa: PLW0603 - tests and the local stack install their own
    with _lock:
        _services = services


def configure_app_telemetry() -> Telemetry:
    """The app's OpenTelemetry: exported to Azure Monitor when its connection string is set.

    Lifecycle transitions are spans (:mod:`lepton.shared.rollout`); without this call they
    would go to OpenTelemetry's no-op provider. Safe to call again: the first setup stays.
    """
    return configure_telemetry(TelemetrySettings.from_env(TELEMETRY_SERVICE_NAME))
