"""Test harness for the worker: publish real ONNX versions to Azurite and serve them over HTTP.

Versions go through :class:`BlobModelStore` and :class:`TableRegistry` exactly as the lifecycle
puts them there, so the worker finds them the way it does in production. The worker runs in
uvicorn on a free 127.0.0.1 port in a background thread.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import httpx
import uvicorn
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from lepton.dev.azurite import free_port
from lepton.gpuworker import WorkerSettings, create_app
from lepton.gpuworker.runtime import WorkerRuntime
from lepton.shared.lifecycle import Stage
from lepton.shared.manifest import Batching, Manifest
from lepton.shared.model_store import BlobModelStore
from lepton.shared.records import Routes
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import ModelStoreSettings, StorageSettings

_PATHS: dict[Stage, tuple[Stage, ...]] = {
    Stage.REGISTERED: (),
    Stage.EVALUATING: (Stage.VALIDATING, Stage.EVALUATING),
    Stage.PRODUCTION: (Stage.VALIDATING, Stage.EVALUATING, Stage.PRODUCTION),
    Stage.CANARY: (Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY),
    Stage.SHADOW: (Stage.VALIDATING, Stage.EVALUATING, Stage.SHADOW),
}


@dataclass
class Registry:
    """Publishes versions and changes routes like the control plane does."""

    registry: TableRegistry
    store: BlobModelStore
    blobs: BlobServiceClient

    def publish(
        self,
        model: str,
        version: str,
        onnx_bytes: bytes,
        stage: Stage = Stage.PRODUCTION,
        batching: Batching | None = None,
    ) -> None:
        if batching is not None:
            self.store.put_manifest(model, version, Manifest(batching=batching))
        stored = self.store.upload_model(model, version, io.BytesIO(onnx_bytes))
        assert stored.sha256 == hashlib.sha256(onnx_bytes).hexdigest()
        self.registry.register_version(
            model, version, sha256=stored.sha256, size=stored.size, blob_path=stored.path
        )
        for step in _PATHS[stage]:
            self.registry.transition(model, version, step, reason="test", actor="test")

    def move(self, model: str, version: str, to: Stage) -> None:
        self.registry.transition(model, version, to, reason="test", actor="test")

    def route(self, model: str, **changes: object) -> Routes:
        current = self.registry.get_routes(model)
        changed = replace(current, **changes)  # type: ignore[arg-type]
        return self.registry.set_routes(changed, actor="test", reason="test")


def make_registry(
    blobs: BlobServiceClient, tables: TableServiceClient, store_settings: ModelStoreSettings
) -> Registry:
    return Registry(TableRegistry(tables), BlobModelStore(blobs, store_settings), blobs)


@dataclass
class Worker:
    url: str
    runtime: WorkerRuntime
    client: httpx.Client

    def wait_ready(self, model: str, version: str, timeout: float = 15.0) -> None:
        path = f"/v2/models/{model}/versions/{version}/ready"
        wait_until(lambda: self.client.get(path).status_code == 200, timeout, f"{path} ready")

    def wait_routes(
        self, model: str, check: Callable[[dict[str, object]], bool], timeout: float = 15.0
    ) -> None:
        def ok() -> bool:
            r = self.client.get(f"/v2/models/{model}")
            return r.status_code == 200 and check(r.json()["parameters"]["routes"])

        wait_until(ok, timeout, f"routes of {model}")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def fast_settings(**overrides: object) -> WorkerSettings:
    base = WorkerSettings(
        host="127.0.0.1",
        port=free_port(),
        replica_id="test-replica",
        poll_interval_s=0.1,
        heartbeat_s=0.2,
        flush_s=0.2,
        window_s=10,
        unload_grace_s=60.0,
        intra_op_threads=1,
        batch_concurrency=2,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextmanager
def serve(
    settings: WorkerSettings, storage: StorageSettings, store_settings: ModelStoreSettings
) -> Iterator[Worker]:
    app = create_app(settings, storage, store_settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="worker", daemon=True)
    thread.start()
    url = f"http://{settings.host}:{settings.port}"
    client = httpx.Client(base_url=url, timeout=30.0)
    try:
        wait_until(lambda: server.started, 15.0, "uvicorn to start")
        worker = Worker(url, app.state.runtime, client)
        wait_until(lambda: client.get("/v2/health/ready").status_code == 200, 15.0, "readiness")
        yield worker
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
