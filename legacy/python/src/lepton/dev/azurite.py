"""Start and stop the Azurite storage emulator from the project's pinned npm package.

Used by the local stack (``make run``) and by the test suite's session fixture, so both run the
same emulator the same way. Ports default to free ones; data lives in the folder given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lepton.shared.errors import ConfigurationError

# Azurite's fixed development account (documented publicly; it is not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now.

    SO_REUSEADDR, as uvicorn, gRPC and Node set it: connections of a just-stopped stack linger in
    TIME_WAIT for a minute and must not count as "taken", while a live listener still does.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def find_azurite(project_root: Path) -> Path:
    binary = project_root / "node_modules" / ".bin" / "azurite"
    if binary.exists():
        return binary
    on_path = shutil.which("azurite")
    if on_path:
        return Path(on_path)
    raise ConfigurationError(
        f"Azurite is not installed: run `npm ci` in {project_root} (or `make test`, which does), "
        "then try again"
    )


@dataclass
class Azurite:
    """A running Azurite; use as a context manager or call :meth:`start`/:meth:`stop`."""

    data_dir: Path
    project_root: Path
    blob_port: int = field(default_factory=free_port)
    queue_port: int = field(default_factory=free_port)
    table_port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT_NAME};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT_NAME};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT_NAME};"
        )

    def start(self) -> Azurite:
        for name, port in (
            ("blob", self.blob_port),
            ("queue", self.queue_port),
            ("table", self.table_port),
        ):
            if not port_is_free(port):
                raise ConfigurationError(
                    f"Azurite {name} port {port} on 127.0.0.1 is already in use: stop what is "
                    "listening there or choose other ports"
                )
        binary = find_azurite(self.project_root)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "azurite.log").open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "--silent",
                    "--skipApiVersionCheck",  # the Python SDKs may be newer than this Azurite
                    "--disableProductStyleUrl",
                    "--location",
                    str(self.data_dir),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.blob_port),
                    "--queueHost",
                    "127.0.0.1",
                    "--queuePort",
                    str(self.queue_port),
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(self.table_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigurationError(
                    f"Azurite exited with code {self._process.returncode}; see "
                    f"{self.data_dir / 'azurite.log'}"
                )
            if all(not port_is_free(p) for p in (self.blob_port, self.queue_port, self.table_port)):
                return
            time.sleep(0.1)
        self.stop()
        raise ConfigurationError(f"Azurite did not start within {_STARTUP_SECONDS:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
