"""Supervises the inference worker as a subprocess (``python -m lepton.gpuworker``).

The worker runs in its own process, as it does in its container in Azure, configured only through
its ``LEPTON_WORKER_*`` settings and ``AzureWebJobsStorage``. Its output is bridged line by line
into the ``worker`` log; start-up waits for ``GET /v2/health/live``; a crash is logged and the
worker restarted (bounded), and stop sends SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from lepton.dev.logs import part_logger
from lepton.shared.errors import ConfigurationError

_log = part_logger("worker")
_STOP_GRACE_S = 10.0
# The worker logs "<asctime> <logger name> <message>"; lines not starting so continue a record.
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\S+) ?(.*)$")
_QUIET_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")
_MAX_RESTARTS = 5


@dataclass(frozen=True)
class WorkerSpec:
    host: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    command: Sequence[str] = (sys.executable, "-m", "lepton.gpuworker")
    ready_path: str = "/v2/health/live"
    start_timeout_s: float = 60.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class WorkerProcess:
    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        self._process: subprocess.Popen[str] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self.restarts = 0
        self._pumps: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> None:
        env = {**os.environ, **self._spec.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._process = subprocess.Popen(
            list(self._spec.command),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        pump = threading.Thread(
            target=self._pump, args=(self._process,), daemon=True, name="worker-log"
        )
        self._pumps.append(pump)
        pump.start()

    @staticmethod
    def _pump(process: subprocess.Popen[str]) -> None:
        stream = process.stdout
        assert stream is not None
        quiet = False
        with stream:  # closed once the worker exits and its output ends
            for raw in stream:
                line = raw.rstrip()
                record = _RECORD_START.match(line)
                if record is not None:
                    # The Azure SDKs' request/response dumps span many lines each and say
                    # nothing about the worker, so a record from those loggers is dropped whole.
                    quiet = record.group(1).startswith(_QUIET_LOGGERS)
                    line = f"{record.group(1)}: {record.group(2)}"
                if not quiet and line:
                    _log.info("%s", line)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._spec.start_timeout_s
        url = self._spec.url + self._spec.ready_path
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                raise ConfigurationError(
                    f"the worker exited with code {process.returncode} during start-up; its "
                    "output is in the [worker] log lines above"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ConfigurationError(
            f"the worker did not answer {url} within {self._spec.start_timeout_s:.0f} s"
        )

    def start(self) -> WorkerProcess:
        with self._lock:
            self._spawn()
        try:
            self._wait_ready()
        except ConfigurationError:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, daemon=True, name="worker-watch")
        self._monitor.start()
        _log.info("worker ready on %s (pid %s)", self._spec.url, self.pid)
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            with self._lock:
                process = self._process
                if process is None or process.poll() is None:
                    continue
                if self.restarts >= _MAX_RESTARTS:
                    _log.error(
                        "the worker exited with code %s and was restarted %d times; "
                        "giving up: fix the error above and restart `lepton dev`",
                        process.returncode,
                        self.restarts,
                    )
                    return
                self.restarts += 1
                _log.warning(
                    "the worker exited with code %s; restarting (%d/%d)",
                    process.returncode,
                    self.restarts,
                    _MAX_RESTARTS,
                )
                self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _log.warning("the worker did not stop within %.0f s; killing it", _STOP_GRACE_S)
                process.kill()
                process.wait()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        for pump in self._pumps:
            pump.join(timeout=5)
