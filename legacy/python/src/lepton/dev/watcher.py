"""The blob watcher: turns each new ``models/{model}/{version}/model.onnx`` into BlobCreated.

In Azure, the storage account publishes ``BlobCreated`` to Event Grid, which POSTs it to the
Functions host's blob webhook. Azurite publishes no events, so the local stack polls the ``models``
container and POSTs the same event to the same webhook. Each blob version (name + ETag) is
delivered exactly once, across restarts too: the ledger of delivered versions is a JSON file under
the data folder, rewritten atomically only after the webhook answered 2xx. A failed delivery is
retried on the next poll; a crash between the 2xx and the ledger write re-delivers once, which the
lifecycle absorbs (its instance id is derived from the content).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from azure.storage.blob import ContainerClient

from lepton.dev.eventgrid import EVENT_TYPE_HEADER, blob_created_event
from lepton.dev.logs import part_logger
from lepton.shared.model_store import MODEL_FILE

_log = part_logger("watcher")


class DeliveryLedger:
    """Blob name → ETag of the version last delivered, persisted in one JSON file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._delivered: dict[str, str] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise OSError(
                    f"the watcher ledger {path} is unreadable ({err}); delete it to re-deliver "
                    "every model blob (the lifecycle ignores duplicates)"
                ) from None
            self._delivered = {str(k): str(v) for k, v in data.get("delivered", {}).items()}

    def is_delivered(self, name: str, etag: str) -> bool:
        return self._delivered.get(name) == etag

    def record(self, name: str, etag: str) -> None:
        self._delivered[name] = etag
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump({"delivered": self._delivered}, out, indent=1, sort_keys=True)
        os.replace(tmp, self._path)  # atomic: a crash leaves the old or the new ledger

    def __len__(self) -> int:
        return len(self._delivered)


@dataclass(frozen=True)
class Delivery:
    blob_name: str
    etag: str
    status_code: int


def _etag(raw: object) -> str:
    # Listings and property reads quote ETags differently; Event Grid sends them bare.
    return str(raw).strip('"')


def is_model_blob(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 3 and parts[2] == MODEL_FILE


class BlobWatcher:
    """Polls the models container and delivers one BlobCreated event per new blob version."""

    def __init__(
        self,
        container: ContainerClient,
        webhook_url: str,
        ledger: DeliveryLedger,
        *,
        poll_s: float = 0.5,
        timeout_s: float = 30.0,
    ) -> None:
        self._container = container
        self._webhook_url = webhook_url
        self._ledger = ledger
        self._poll_s = poll_s
        self._http = httpx.Client(timeout=timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered: list[Delivery] = []  # everything this watcher delivered, in order

    def poll_once(self) -> list[Delivery]:
        """Deliver every undelivered model blob version, oldest first; returns the 2xx ones."""
        pending = [
            b
            for b in self._container.list_blobs()
            if is_model_blob(b.name) and not self._ledger.is_delivered(b.name, _etag(b.etag))
        ]
        pending.sort(key=lambda b: (b.last_modified, b.name))
        delivered: list[Delivery] = []
        for blob in pending:
            if self._stop.is_set():
                break
            etag = _etag(blob.etag)
            event = blob_created_event(
                account_url=self._container.primary_endpoint.rsplit("/", 1)[0],
                container=self._container.container_name,
                blob_name=blob.name,
                etag=etag,
                content_length=int(blob.size),
            )
            try:
                response = self._http.post(
                    self._webhook_url, json=[event], headers={EVENT_TYPE_HEADER: "Notification"}
                )
            except httpx.HTTPError as err:
                _log.warning(
                    "delivery of %s failed (%s); retrying on the next poll", blob.name, err
                )
                continue
            if not response.is_success:
                _log.warning(
                    "webhook answered %d for %s: %s; retrying on the next poll",
                    response.status_code,
                    blob.name,
                    response.text[:300],
                )
                continue
            self._ledger.record(blob.name, etag)
            _log.info("delivered BlobCreated models/%s (etag %s)", blob.name, etag)
            delivered.append(Delivery(blob.name, etag, response.status_code))
            self.delivered.append(delivered[-1])
        return delivered

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as err:  # storage hiccup: keep watching, say so
                _log.warning("polling the models container failed: %s", err)
            self._stop.wait(self._poll_s)

    def start(self) -> BlobWatcher:
        self._thread = threading.Thread(target=self._run, name="lepton-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._http.close()
