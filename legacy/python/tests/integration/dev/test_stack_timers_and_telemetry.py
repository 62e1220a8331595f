"""The local stack runs the Functions app's timer functions and sets up the app's telemetry.

There is no Functions host locally to fire timer triggers, so the stack's host runs them; with
the real app that is the metric-retention timer, which deletes old rollups from Azurite.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lepton.dev.app import HostedApp, functions_app
from lepton.dev.azurite import free_port
from lepton.dev.host import TimerSpec
from lepton.dev.settings import DevSettings
from lepton.dev.stack import LocalStack
from lepton.shared.lifecycle import Stage
from lepton.shared.metrics import MetricsStore, WindowRollup
from lepton.shared.registry import TableRegistry
from tests.conftest import Storage
from tests.integration.dev._echo_app import SPECS

pytestmark = pytest.mark.azurite


def settings_for(storage: Storage, data_dir: Path) -> DevSettings:
    return DevSettings(
        data_dir=data_dir,
        api_port=free_port(),
        durable_port=free_port(),
        storage_connection=storage.connection_string,
        start_worker=False,
    )


def test_the_stack_sets_up_telemetry_first_and_runs_timers_while_it_runs(
    storage: Storage, tmp_path: Path
) -> None:
    order: list[str] = []
    ticked = threading.Event()

    def make_services(connection: str, cache_dir: Any) -> str:
        order.append("services")
        return "the-services"

    def tick(services: Any) -> None:
        order.append(f"tick:{services}")
        ticked.set()

    app = HostedApp(
        specs=SPECS,
        make_client=lambda grpc: "the-client",
        blob_triggers={},
        make_services=make_services,
        timers={"tick": TimerSpec(tick, 3600.0)},
        configure_telemetry=lambda: order.append("telemetry"),
    )
    stack = LocalStack(settings_for(storage, tmp_path / "lepton"), app).start()
    try:
        assert ticked.wait(10), "the timer never ran"
    finally:
        stack.stop()
    assert order == ["telemetry", "services", "tick:the-services"]


def test_the_real_app_s_retention_timer_prunes_old_rollups_on_the_local_stack(
    storage: Storage, tmp_path: Path
) -> None:
    registry = TableRegistry(storage.tables)
    registry.register_version("digits", "1.0.0", sha256="ab" * 32, size=1, blob_path="p")
    # Finished, so the reconciler leaves it alone: only the timer acts on this model.
    registry.transition("digits", "1.0.0", Stage.REJECTED, reason="test setup", actor="t")
    metrics = MetricsStore(storage.tables)
    now = int(time.time())
    old, recent = now - 8 * 86_400, now - 60  # beyond and within the default week
    for start in (old, recent):
        metrics.write(WindowRollup("digits", "1.0.0", "r0", start, 10, requests=1))

    stack = LocalStack(settings_for(storage, tmp_path / "lepton"), functions_app()).start()
    try:
        # The timer runs once as the stack starts, on its own thread: wait for its effect.
        deadline = time.monotonic() + 20
        while [r.window_start for r in metrics.read("digits", 0, now + 1)] != [recent]:
            assert time.monotonic() < deadline, "old rollups were never deleted"
            time.sleep(0.1)
    finally:
        stack.stop()
