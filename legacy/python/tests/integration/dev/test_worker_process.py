"""Supervision of the real worker subprocess: ready check, restart on crash, clean stop."""

from __future__ import annotations

import os
import signal
import sys
import time

import httpx
import pytest

from lepton.dev.azurite import free_port, port_is_free
from lepton.dev.worker_process import WorkerProcess, WorkerSpec
from lepton.shared.errors import ConfigurationError
from tests.conftest import Storage

pytestmark = pytest.mark.azurite


def _spec(storage: Storage, port: int, **env: str) -> WorkerSpec:
    return WorkerSpec(
        "127.0.0.1",
        port,
        start_timeout_s=30,
        env={
            "AzureWebJobsStorage": storage.connection_string,
            "LEPTON_WORKER_HOST": "127.0.0.1",
            "LEPTON_WORKER_PORT": str(port),
            "LEPTON_WORKER_REPLICA_ID": "supervised",
            **env,
        },
    )


def test_worker_is_ready_restarted_after_a_crash_and_stopped_cleanly(storage: Storage) -> None:
    port = free_port()
    worker = WorkerProcess(_spec(storage, port)).start()
    try:
        live = f"http://127.0.0.1:{port}/v2/health/live"
        assert httpx.get(live).status_code == 200
        first_pid = worker.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if worker.pid != first_pid and httpx.get(live).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.1)
        assert worker.restarts == 1
    finally:
        worker.stop()
    assert worker.pid is None
    assert port_is_free(port)


def test_a_worker_that_cannot_start_is_reported_with_its_exit_code(storage: Storage) -> None:
    spec = _spec(storage, free_port(), LEPTON_WORKER_WINDOW_S="soon")
    with pytest.raises(ConfigurationError, match="exited with code 2 during start-up"):
        WorkerProcess(spec).start()


def test_a_worker_that_never_answers_times_out_with_the_url() -> None:
    port = free_port()
    sleeper = WorkerSpec(
        "127.0.0.1",
        port,
        command=(sys.executable, "-c", "import time; time.sleep(30)"),
        start_timeout_s=1,
    )
    process = WorkerProcess(sleeper)
    with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}/v2/health/live within 1 s"):
        process.start()
    assert process.pid is None
