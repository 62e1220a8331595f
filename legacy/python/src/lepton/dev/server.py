"""Runs an ASGI app under uvicorn in a background thread, with a clean start and stop.

The local stack and the tests serve the host on a real socket this way; uvicorn skips installing
signal handlers off the main thread, so Ctrl-C stays with the stack, which stops the server itself.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp

from lepton.shared.errors import ConfigurationError

_START_TIMEOUT_S = 15.0


class ServerThread:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"http-{port}", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the HTTP server on {self.url} did not start; is the port taken?"
                )
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
