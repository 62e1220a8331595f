"""Fixtures for lifecycle integration tests: the real orchestrator on durabletask's in-memory
backend, activities against the session's Azurite, models built on the spot for ONNX Runtime."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.testing import create_test_backend
from durabletask.worker import TaskHubGrpcWorker

from lepton.dev import sample_models
from lepton.functions.client import DurableTaskLifecycleClient, InstanceStatus
from lepton.functions.local import register_durabletask
from lepton.functions.services import Services, set_services
from lepton.shared.manifest import Manifest
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage

MODEL = "digits"

# Compressed policy: 1 s windows, sub-second polls, so a whole rollout takes seconds.
FAST: dict[str, Any] = {
    "steps_bp": [5000, 10000],
    "window_s": 1.0,
    "check_interval_s": 0.5,
    "max_extensions": 2,
    "shadow_duration_s": 1.0,
    "approval_timeout_s": 20.0,
    "bake_s": 0.3,
    "warmup_timeout_s": 1.5,
    "warmup_poll_s": 0.3,
    "slot_wait_timeout_s": 20.0,
    "slot_poll_s": 0.3,
    "retry_interval_s": 0.1,
    "retry_attempts": 2,
    "thresholds": {"min_requests": 40},
    "evaluation": {"shards": 2},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Host:
    services: Services
    grpc: TaskHubGrpcClient
    client: DurableTaskLifecycleClient

    def wait_done(self, instance_id: str, timeout: float = 30.0) -> Any:
        state = self.grpc.wait_for_orchestration_completion(instance_id, timeout=int(timeout))
        assert state is not None, f"{instance_id} did not finish in {timeout}s"
        state.raise_if_failed()
        return state.get_output()

    def wait_status(self, instance_id: str, predicate: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            state = self.grpc.get_orchestration_state(instance_id)
            if state is not None:
                last = state.get_custom_status()
                if last and predicate(last):
                    return last
            time.sleep(0.05)
        raise AssertionError(f"custom status never matched; last seen: {last}")


@pytest.fixture(scope="session")
def digits_data() -> tuple[sample_models.Dataset, sample_models.Dataset]:
    return sample_models.digits()


@contextlib.contextmanager
def durable_host(services: Services) -> Iterator[Host]:
    """One life of the durable part (backend, worker, client) on free ports; gone on exit.

    The local stack's restart is two of these in turn on the same storage: the in-memory
    backend forgets every orchestration when it stops.
    """
    port = free_port()
    backend = create_test_backend(port=port)
    worker = TaskHubGrpcWorker(host_address=f"localhost:{port}")
    register_durabletask(worker, services)
    worker.start()
    grpc_client = TaskHubGrpcClient(host_address=f"localhost:{port}")
    try:
        yield Host(services, grpc_client, DurableTaskLifecycleClient(grpc_client))
    finally:
        worker.stop()
        grpc_client.close()
        backend.stop(grace=None)
        backend.reset()


@pytest.fixture
def host(storage: Storage, tmp_path: Path) -> Iterator[Host]:
    services = Services.from_settings(
        storage.settings, ModelStoreSettings(cache_dir=tmp_path / "cache")
    )
    set_services(services)  # the HTTP handlers use the process-wide services
    try:
        with durable_host(services) as running:
            yield running
    finally:
        set_services(None)


def upload(
    services: Services,
    version: str,
    data: bytes,
    *,
    dataset: str | None = "digits",
    policy: dict[str, Any] | None = None,
    breaking: bool = False,
    model: str = MODEL,
) -> str:
    """Upload as an external tool (azcopy, the portal) would: manifest first, then the file.

    The file carries no sha256 metadata, so the lifecycle also exercises ``stat_model`` hashing
    an upload made outside Lepton; the CLI's own path (``BlobModelStore.upload_model``) is
    covered by the model store tests and the end-to-end scenario.
    """
    manifest = Manifest(dataset=dataset, policy=policy or {}, breaking=breaking)
    services.store.put_manifest(model, version, manifest)
    container = services.store._models  # test-only raw upload, see docstring
    container.upload_blob(f"{model}/{version}/model.onnx", io.BytesIO(data), overwrite=False)
    return services.store.stat_model(model, version).sha256


def status_of(host: Host, instance_id: str) -> InstanceStatus:
    status = asyncio.run(host.client.status(instance_id))
    assert status is not None
    return status
