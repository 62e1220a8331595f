"""``lepton dev`` as a user runs it: everything up, endpoints printed, one Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lepton.dev.azurite import free_port, port_is_free

START_ORDER = [
    "azurite",
    "services",
    "durabletask backend",
    "durabletask worker",
    "durabletask client",
    "HTTP API",
    "worker",
    "blob watcher",
]


def test_dev_starts_everything_and_one_ctrl_c_stops_it_in_reverse_order(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("api", "worker", "durable", "blob", "queue", "table")}
    args = [sys.executable, "-m", "lepton.cli", "dev", "--data-dir", str(tmp_path / "lepton")]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    env = {**os.environ, "COLUMNS": "250"}
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api = httpx.get(f"http://127.0.0.1:{ports['api']}/api/health", timeout=1)
                worker = httpx.get(f"http://127.0.0.1:{ports['worker']}/v2/health/live", timeout=1)
                if api.status_code == worker.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the stack did not come up"
            time.sleep(0.2)
        time.sleep(1.0)  # let the last parts (reconciler, watcher) finish starting
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{ports['api']}/api" in out
    assert f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/devstoreaccount1;" in out
    assert "export AzureWebJobsStorage=" in out
    stopped = [
        line.split("stopped ", 1)[1].strip()
        for line in err.splitlines()
        if "[stack    ] stopped " in line
    ]
    assert stopped == list(reversed(START_ORDER)), err
    for port in ports.values():
        assert port_is_free(port), f"port {port} still taken after stop"
    assert (tmp_path / "lepton" / "azurite").is_dir()
