"""Worker replica heartbeats in the ``workers`` table.

Each replica upserts one row (PartitionKey ``replica``) with its provider and the versions it has
loaded and ready. The lifecycle gives a candidate traffic only once every live replica reports it
ready; a replica whose heartbeat is older than the liveness window no longer counts.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from lepton.shared.storage import WORKERS_TABLE

_PARTITION = "replica"


@dataclass(frozen=True)
class Heartbeat:
    replica: str
    url: str
    provider: str  # "CUDAExecutionProvider" | "CPUExecutionProvider"
    at: datetime
    loaded: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model → versions
    ready: dict[str, tuple[str, ...]] = field(default_factory=dict)
    draining: bool = False

    def is_ready(self, model: str, version: str) -> bool:
        return version in self.ready.get(model, ())

    def to_json(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "url": self.url,
            "provider": self.provider,
            "at": self.at.isoformat(),
            "draining": self.draining,
            "loaded": {m: list(v) for m, v in self.loaded.items()},
            "ready": {m: list(v) for m, v in self.ready.items()},
        }


@dataclass(frozen=True)
class WarmStatus:
    """Whether every live replica has a version ready, and which are still missing it."""

    ready: bool
    live_replicas: tuple[str, ...]
    missing: tuple[str, ...]


class WorkerDirectory:
    """Heartbeats of worker replicas over the ``workers`` table."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table: TableClient = tables.get_table_client(WORKERS_TABLE)

    def beat(self, heartbeat: Heartbeat) -> None:
        self._table.upsert_entity(
            {
                "PartitionKey": _PARTITION,
                "RowKey": heartbeat.replica,
                "Data": json.dumps(heartbeat.to_json()),
            },
            mode=UpdateMode.REPLACE,
        )

    def remove(self, replica: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(_PARTITION, replica)

    def all(self) -> list[Heartbeat]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": _PARTITION})
        return [_from_json(json.loads(r["Data"])) for r in rows]

    def live(self, now: datetime, max_age: timedelta) -> list[Heartbeat]:
        """Replicas whose last heartbeat is within ``max_age`` of ``now`` and not draining."""
        return [h for h in self.all() if now - h.at <= max_age and not h.draining]

    def warm_status(
        self, model: str, version: str, now: datetime, max_age: timedelta
    ) -> WarmStatus:
        live = self.live(now, max_age)
        missing = tuple(sorted(h.replica for h in live if not h.is_ready(model, version)))
        return WarmStatus(
            ready=bool(live) and not missing,
            live_replicas=tuple(sorted(h.replica for h in live)),
            missing=missing,
        )


def _from_json(data: dict[str, Any]) -> Heartbeat:
    return Heartbeat(
        replica=data["replica"],
        url=data.get("url", ""),
        provider=data.get("provider", ""),
        at=datetime.fromisoformat(data["at"]).astimezone(UTC),
        loaded={m: tuple(v) for m, v in data.get("loaded", {}).items()},
        ready={m: tuple(v) for m, v in data.get("ready", {}).items()},
        draining=bool(data.get("draining", False)),
    )
