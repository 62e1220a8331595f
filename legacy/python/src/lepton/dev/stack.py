"""The local stack: every part of Lepton in one process tree, started and stopped in order.

Start: the app's telemetry → check every port → Azurite (data under ``<data>/azurite``) → storage
layout → the in-memory durabletask backend and a worker running the app's orchestrator and
activities → the local Functions host (``/api``, the blob webhook, the durable status API, and the
app's timer functions, run periodically since no Functions host schedules them) → the inference
worker subprocess → the reconciler (restarts lifecycles of versions left in a non-terminal stage:
the in-memory backend forgets orchestrations on restart) → the blob watcher. Stop runs the same
list backwards, and a part that fails to start stops those already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durabletask.client import TaskHubGrpcClient
from durabletask.testing import InMemoryOrchestrationBackend, create_test_backend
from durabletask.worker import TaskHubGrpcWorker

from lepton.dev.app import PROJECT_ROOT, HostedApp
from lepton.dev.azurite import Azurite
from lepton.dev.durable_http import durable_routes
from lepton.dev.eventgrid import WEBHOOK_PATH, function_key
from lepton.dev.host import TimerRunner, build_host_app
from lepton.dev.logs import part_logger
from lepton.dev.ports import check_ports_free
from lepton.dev.server import ServerThread
from lepton.dev.settings import HOST, DevSettings
from lepton.dev.watcher import BlobWatcher, DeliveryLedger
from lepton.dev.worker_process import WorkerProcess, WorkerSpec
from lepton.shared.settings import StorageSettings
from lepton.shared.storage import MODELS_CONTAINER, blob_service, ensure_layout, table_service

_log = part_logger("stack")


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    worker_url: str | None
    durable_address: str
    storage_connection: str
    data_dir: Path

    def lines(self) -> list[tuple[str, str]]:
        out = [
            ("HTTP API", f"{self.api_url}/api"),
            ("Durable status", f"{self.api_url}/runtime/webhooks/durabletask/instances/<id>"),
            ("Blob webhook", f"{self.api_url}{WEBHOOK_PATH}"),
        ]
        if self.worker_url:
            out.append(("Worker (v2)", f"{self.worker_url}/v2"))
        out += [
            ("durabletask gRPC", self.durable_address),
            ("Data folder", str(self.data_dir)),
            ("AzureWebJobsStorage", self.storage_connection),
        ]
        return out


class LocalStack:
    """Start with :meth:`start` (or ``with``); :meth:`stop` is safe to call at any point."""

    def __init__(self, settings: DevSettings, app: HostedApp) -> None:
        self.settings = settings
        self.app = app
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.azurite: Azurite | None = None
        self.services: Any = None
        self.client: TaskHubGrpcClient | None = None
        self.lifecycle_client: Any = None
        self.worker: WorkerProcess | None = None
        self.watcher: BlobWatcher | None = None
        self.resumed: Any = None
        self._connection = settings.storage_connection or ""

    @property
    def connection_string(self) -> str:
        return self._connection

    @property
    def endpoints(self) -> Endpoints:
        s = self.settings
        return Endpoints(
            api_url=s.api_url,
            worker_url=s.worker_url if s.start_worker else None,
            durable_address=f"{HOST}:{s.durable_port}",
            storage_connection=self._connection,
            data_dir=s.data_dir,
        )

    def _started(self, part: str, stop: Callable[[], None]) -> None:
        self._stops.append((part, stop))

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        # First, so every part's spans (lifecycle transitions included) are exported.
        self.app.configure_telemetry()
        check_ports_free(s.ports())
        data = s.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)

        if s.storage_connection is None:
            azurite = Azurite(
                data / "azurite", PROJECT_ROOT, s.blob_port, s.queue_port, s.table_port
            )
            azurite.start()
            self.azurite = azurite
            self._started("azurite", azurite.stop)
            self._connection = azurite.connection_string
            _log.info(
                "Azurite ready (blob %d, queue %d, table %d)",
                s.blob_port,
                s.queue_port,
                s.table_port,
            )
        storage = StorageSettings(connection_string=self._connection)
        blobs, tables = blob_service(storage), table_service(storage)
        ensure_layout(blobs, tables)

        if self.app.make_services is not None:
            self.services = self.app.make_services(self._connection, data / "cache")
            self.app.install_services(self.services)
            self._started("services", lambda: self.app.install_services(None))

        backend: InMemoryOrchestrationBackend = create_test_backend(port=s.durable_port)
        self._started("durabletask backend", backend.stop)
        address = f"{HOST}:{s.durable_port}"
        # The SDK logs every work item at INFO and a normal shutdown's cancelled stream as a
        # WARNING; the stack's story is told by its own parts, so only its errors show.
        durable_log = part_logger("durable")
        durable_log.setLevel(logging.ERROR)
        worker = TaskHubGrpcWorker(host_address=address, logger=durable_log)
        self.app.register(worker, self.services)
        worker.start()  # type: ignore[no-untyped-call]
        self._started("durabletask worker", worker.stop)
        client = TaskHubGrpcClient(host_address=address, logger=durable_log)
        self.client = client
        self._started("durabletask client", client.close)
        self.lifecycle_client = self.app.make_client(client)
        _log.info("durabletask in-memory backend and worker on %s", address)

        host_app = build_host_app(
            specs=self.app.specs,
            client=self.lifecycle_client,
            blob_triggers={
                name: _bind(trigger, self.lifecycle_client)
                for name, trigger in self.app.blob_triggers.items()
            },
            extra_routes=durable_routes(client),
        )
        server = ServerThread(host_app, HOST, s.api_port).start()
        timers = TimerRunner(self.app.timers, self.services).start()

        def stop_host() -> None:
            timers.stop()  # a timer run in progress finishes before its host goes
            server.stop()

        # One part, as in Azure: the Functions host serves the routes and runs the timers.
        self._started("HTTP API", stop_host)
        _log.info(
            "Functions host on %s (%d routes, timers: %s)",
            s.api_url,
            len(self.app.specs),
            ", ".join(self.app.timers) or "none",
        )

        if s.start_worker:
            spec = WorkerSpec(HOST, s.worker_port, env=self.worker_env())
            self.worker = WorkerProcess(spec).start()
            self._started("worker", self.worker.stop)

        if self.app.resume is not None:
            self.resumed = asyncio.run(self.app.resume(self.services, self.lifecycle_client))
            _log.info("reconciler: %s", self.resumed or "nothing to resume")

        if self.app.blob_triggers:
            name = next(iter(self.app.blob_triggers))
            webhook = f"{s.api_url}{WEBHOOK_PATH}?functionName={function_key(name)}"
            ledger = DeliveryLedger(data / "watcher" / "delivered.json")
            self.watcher = BlobWatcher(
                blobs.get_container_client(MODELS_CONTAINER),
                webhook,
                ledger,
                poll_s=s.watcher_poll_s,
            ).start()
            self._started("blob watcher", self.watcher.stop)
            _log.info(
                "blob watcher on models/ → %s (%d versions delivered before)", webhook, len(ledger)
            )

    def worker_env(self) -> dict[str, str]:
        s = self.settings
        return {
            "AzureWebJobsStorage": self._connection,
            "LEPTON_WORKER_HOST": HOST,
            "LEPTON_WORKER_PORT": str(s.worker_port),
            "LEPTON_WORKER_REPLICA_ID": "local-0",
            "LEPTON_WORKER_WINDOW_S": str(s.worker_window_s),
            "LEPTON_WORKER_POLL_INTERVAL_S": f"{s.worker_poll_interval_s:g}",
            # Rollups and heartbeats as often as routes are polled, so short canary windows see
            # the traffic of the window they judge.
            "LEPTON_WORKER_FLUSH_S": f"{s.worker_poll_interval_s:g}",
            "LEPTON_WORKER_HEARTBEAT_S": f"{max(1.0, s.worker_poll_interval_s):g}",
            "LEPTON_CACHE_DIR": str((s.data_dir / "worker-cache").resolve()),
        }

    def stop(self) -> None:
        """Stop every started part, last started first; errors are logged, never raised."""
        while self._stops:
            part, stop = self._stops.pop()
            try:
                stop()
            except Exception as err:
                _log.warning("stopping %s failed: %s", part, err)
            else:
                _log.info("stopped %s", part)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(trigger: Any, client: Any) -> Any:
    async def bound(event: Any) -> None:
        await trigger(event, client)

    return bound


@contextlib.contextmanager
def running_stack(settings: DevSettings, app: HostedApp) -> Any:
    stack = LocalStack(settings, app).start()
    try:
        yield stack
    finally:
        stack.stop()
