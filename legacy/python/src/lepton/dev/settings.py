"""Settings of the local stack (``lepton dev``): ports, data folder and rollout speed.

Read once from the environment (``LEPTON_DEV_*``) and overridable by CLI options; the defaults are
the fixed ports a Functions developer expects (Azurite 10000-10002, the Functions host on 7071, the
worker on 8000), so the printed endpoints and connection string are the same every time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from lepton.shared.errors import ConfigurationError

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PortOption:
    """A port the stack listens on, with the CLI option and env variable that change it."""

    part: str
    port: int
    option: str
    env: str


@dataclass(frozen=True)
class DevSettings:
    data_dir: Path = Path(".lepton")
    blob_port: int = 10000
    queue_port: int = 10001
    table_port: int = 10002
    api_port: int = 7071
    worker_port: int = 8000
    durable_port: int = 4001  # gRPC port of the in-memory durabletask backend
    # An existing storage account/Azurite to use instead of starting one (tests share theirs).
    storage_connection: str | None = None
    start_worker: bool = True
    worker_window_s: int = 2  # seconds per metrics rollup window (the worker takes whole s)
    worker_poll_interval_s: float = 0.5
    watcher_poll_s: float = 0.5

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def worker_url(self) -> str:
        return f"http://{HOST}:{self.worker_port}"

    def ports(self) -> tuple[PortOption, ...]:
        """Every port this configuration binds, for the 'port already taken' check."""
        out = [
            PortOption("HTTP API", self.api_port, "--api-port", "LEPTON_DEV_API_PORT"),
            PortOption(
                "durabletask backend",
                self.durable_port,
                "--durable-port",
                "LEPTON_DEV_DURABLE_PORT",
            ),
        ]
        if self.start_worker:
            out.append(
                PortOption("worker", self.worker_port, "--worker-port", "LEPTON_DEV_WORKER_PORT")
            )
        if self.storage_connection is None:
            out += [
                PortOption("Azurite blob", self.blob_port, "--blob-port", "LEPTON_DEV_BLOB_PORT"),
                PortOption(
                    "Azurite queue", self.queue_port, "--queue-port", "LEPTON_DEV_QUEUE_PORT"
                ),
                PortOption(
                    "Azurite table", self.table_port, "--table-port", "LEPTON_DEV_TABLE_PORT"
                ),
            ]
        return tuple(out)

    def with_overrides(self, **changes: object) -> DevSettings:
        """A copy with the given fields replaced; ``None`` values keep the current setting."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **kept)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DevSettings:
        env = os.environ if env is None else env
        base = cls()

        def port(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigurationError(f"{name} must be a port number, got {raw!r}") from None
            if not 1 <= value <= 65535:
                raise ConfigurationError(f"{name} must be within 1..65535, got {value}")
            return value

        data = env.get("LEPTON_DEV_DATA_DIR", "").strip()
        return cls(
            data_dir=Path(data) if data else base.data_dir,
            blob_port=port("LEPTON_DEV_BLOB_PORT", base.blob_port),
            queue_port=port("LEPTON_DEV_QUEUE_PORT", base.queue_port),
            table_port=port("LEPTON_DEV_TABLE_PORT", base.table_port),
            api_port=port("LEPTON_DEV_API_PORT", base.api_port),
            worker_port=port("LEPTON_DEV_WORKER_PORT", base.worker_port),
            durable_port=port("LEPTON_DEV_DURABLE_PORT", base.durable_port),
        )


def local_connection_string(settings: DevSettings | None = None) -> str:
    """The connection string of the local stack's Azurite (default ports unless given)."""
    from lepton.dev.azurite import Azurite

    s = settings or DevSettings()
    return Azurite(s.data_dir, Path("."), s.blob_port, s.queue_port, s.table_port).connection_string
