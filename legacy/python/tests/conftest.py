"""Session-wide real services for the test suite: Azurite (from the pinned npm package).

Azurite starts once per session on free ports in a temporary folder and stops at the end; every
test that asks for ``storage`` gets freshly created containers and tables, removed afterwards, so
tests never see each other's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from lepton.dev.azurite import Azurite
from lepton.shared.errors import ConfigurationError
from lepton.shared.settings import ModelStoreSettings, StorageSettings
from lepton.shared.storage import CONTAINERS, TABLES, blob_service, ensure_layout, table_service

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    try:
        emulator = Azurite(tmp_path_factory.mktemp("azurite"), PROJECT_ROOT).start()
    except ConfigurationError as err:
        pytest.fail(f"cannot start Azurite for the storage tests: {err}", pytrace=False)
    yield emulator
    emulator.stop()


@dataclass
class Storage:
    settings: StorageSettings
    blobs: BlobServiceClient
    tables: TableServiceClient
    connection_string: str


@pytest.fixture
def storage(azurite: Azurite) -> Iterator[Storage]:
    settings = StorageSettings(connection_string=azurite.connection_string)
    blobs, tables = blob_service(settings), table_service(settings)
    ensure_layout(blobs, tables)
    yield Storage(settings, blobs, tables, azurite.connection_string)
    clear_storage(blobs, tables)


def clear_storage(blobs: BlobServiceClient, tables: TableServiceClient) -> None:
    """Empty every Lepton container and table, so the next test starts from nothing."""
    for name in CONTAINERS:
        container = blobs.get_container_client(name)
        for blob in container.list_blobs():
            container.delete_blob(blob.name)
    for name in TABLES:
        client = tables.get_table_client(name)
        for entity in client.list_entities(select=["PartitionKey", "RowKey"]):
            client.delete_entity(entity["PartitionKey"], entity["RowKey"])


@pytest.fixture
def store_settings(tmp_path: Path) -> ModelStoreSettings:
    return ModelStoreSettings(max_model_bytes=2 * 1024 * 1024, cache_dir=tmp_path / "cache")
