"""The blob watcher against real Azurite and a real webhook: exactly once, across restarts too."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from lepton.dev.azurite import free_port
from lepton.dev.host import build_host_app
from lepton.dev.server import ServerThread
from lepton.dev.watcher import BlobWatcher, DeliveryLedger
from lepton.shared.errors import ConfigurationError
from lepton.shared.storage import MODELS_CONTAINER
from tests.conftest import Storage
from tests.integration.dev._echo_app import Recorder

pytestmark = pytest.mark.azurite


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def webhook(recorder: Recorder) -> Iterator[str]:
    async def trigger(event: Any) -> None:
        await recorder(event, None)

    app = build_host_app(specs=(), client=None, blob_triggers={"model_blob": trigger})
    server = ServerThread(app, "127.0.0.1", free_port()).start()
    yield f"{server.url}/runtime/webhooks/blobs?functionName=Host.Functions.model_blob"
    server.stop()


@pytest.fixture
def models(storage: Storage) -> ContainerClient:
    return storage.blobs.get_container_client(MODELS_CONTAINER)


def _put(models: ContainerClient, name: str, data: bytes = b"onnx", overwrite: bool = False) -> str:
    client = models.upload_blob(name, io.BytesIO(data), overwrite=overwrite)
    return str(client.get_blob_properties().etag).strip('"')


def _delivered(recorder: Recorder) -> list[tuple[str, str]]:
    return [(e.blob_name, e.etag) for e, _ in recorder.events]


def test_each_model_blob_version_is_delivered_once_and_others_never(
    models: ContainerClient, webhook: str, recorder: Recorder, tmp_path: Path
) -> None:
    first = _put(models, "digits/1.0.0/model.onnx")
    _put(models, "digits/1.0.0/lepton.json", b"{}")
    _put(models, "digits/notes.txt", b"hi")
    second = _put(models, "digits/1.1.0/model.onnx")
    watcher = BlobWatcher(models, webhook, DeliveryLedger(tmp_path / "ledger.json"))
    try:
        delivered = watcher.poll_once()
        assert [d.blob_name for d in delivered] == [
            "digits/1.0.0/model.onnx",
            "digits/1.1.0/model.onnx",
        ], [b.name for b in models.list_blobs()]
        assert watcher.poll_once() == []
    finally:
        watcher.stop()
    assert _delivered(recorder) == [
        ("digits/1.0.0/model.onnx", first),
        ("digits/1.1.0/model.onnx", second),
    ]
    assert {e.container for e, _ in recorder.events} == {"models"}


def test_a_restarted_watcher_delivers_only_new_or_changed_blobs(
    models: ContainerClient, webhook: str, recorder: Recorder, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "watcher" / "delivered.json"
    _put(models, "digits/1.0.0/model.onnx")
    before = BlobWatcher(models, webhook, DeliveryLedger(ledger_path))
    before.poll_once()
    before.stop()

    # While "down": one new version and one overwritten file (a new blob version).
    added = _put(models, "digits/2.0.0/model.onnx")
    replaced = _put(models, "digits/1.0.0/model.onnx", b"other bytes", overwrite=True)

    after = BlobWatcher(models, webhook, DeliveryLedger(ledger_path))
    try:
        delivered = after.poll_once()
        assert after.poll_once() == []
    finally:
        after.stop()
    assert sorted((d.blob_name, d.etag) for d in delivered) == sorted(
        [("digits/2.0.0/model.onnx", added), ("digits/1.0.0/model.onnx", replaced)]
    )
    assert len(recorder.events) == 3


def test_a_failed_delivery_is_not_recorded_and_is_retried(
    models: ContainerClient, webhook: str, recorder: Recorder, tmp_path: Path
) -> None:
    etag = _put(models, "digits/1.0.0/model.onnx")
    ledger_path = tmp_path / "ledger.json"
    recorder.fail_with = ConfigurationError("lifecycle backend not ready")
    watcher = BlobWatcher(models, webhook, DeliveryLedger(ledger_path))
    try:
        assert watcher.poll_once() == []
        assert not ledger_path.exists()
        recorder.fail_with = None
        assert [(d.blob_name, d.etag) for d in watcher.poll_once()] == [
            ("digits/1.0.0/model.onnx", etag)
        ]
    finally:
        watcher.stop()
    assert _delivered(recorder) == [("digits/1.0.0/model.onnx", etag)]
    assert DeliveryLedger(ledger_path).is_delivered("digits/1.0.0/model.onnx", etag)


def test_an_unreachable_webhook_loses_nothing(
    models: ContainerClient, recorder: Recorder, tmp_path: Path
) -> None:
    _put(models, "digits/1.0.0/model.onnx")
    url = f"http://127.0.0.1:{free_port()}/runtime/webhooks/blobs?functionName=x"
    watcher = BlobWatcher(models, url, DeliveryLedger(tmp_path / "ledger.json"), timeout_s=2)
    try:
        assert watcher.poll_once() == []
    finally:
        watcher.stop()
    assert len(DeliveryLedger(tmp_path / "ledger.json")) == 0


def test_an_unreadable_ledger_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{broken")
    with pytest.raises(OSError, match="delete it to re-deliver"):
        DeliveryLedger(path)
