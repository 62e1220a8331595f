"""``python -m lepton.gpuworker``: serve with uvicorn, settings from the environment.

Uvicorn runs on uvloop with the httptools parser (the fastest pure-Python-hosted HTTP/1.1 stack;
the worker's own overhead is then mostly orjson and numpy). On SIGTERM/SIGINT the replica first
turns readiness off and publishes a draining heartbeat, waits ``LEPTON_WORKER_DRAIN_S`` so load
balancers and the control plane notice, then lets uvicorn stop accepting and finish in-flight
requests before the final rollups are written.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from types import FrameType

import uvicorn

from lepton.gpuworker.app import create_app
from lepton.gpuworker.runtime import WorkerRuntime
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import ConfigurationError
from lepton.shared.telemetry import TelemetrySettings, configure_telemetry


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: WorkerRuntime, drain_s: float) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._drain_s = drain_s
        self._beat: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._runtime.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self._runtime.draining = True
        loop = asyncio.get_event_loop()
        self._beat = loop.create_task(self._runtime.beat())
        loop.call_later(self._drain_s, super().handle_exit, sig, frame)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Exports the worker's OpenTelemetry metrics to Azure Monitor when it is configured.
    configure_telemetry(TelemetrySettings.from_env("lepton-gpuworker"))
    try:
        settings = WorkerSettings.from_env()
        app = create_app(settings)
    except ConfigurationError as err:
        print(f"lepton worker: {err}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
    server = _DrainingServer(config, app.state.runtime, settings.drain_s)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
