"""Azure SDK clients for the storage account, built from :class:`StorageSettings`, and the layout.

This is the only place that turns settings into SDK clients; everything else receives clients.
"""

from __future__ import annotations

import contextlib

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from lepton.shared.settings import StorageSettings

MODELS_CONTAINER = "models"
DATASETS_CONTAINER = "datasets"
REPORTS_CONTAINER = "reports"
CONTAINERS: tuple[str, ...] = (MODELS_CONTAINER, DATASETS_CONTAINER, REPORTS_CONTAINER)

VERSIONS_TABLE = "versions"
ROUTES_TABLE = "routes"
EVENTS_TABLE = "events"
METRICS_TABLE = "metrics"
WORKERS_TABLE = "workers"
TABLES: tuple[str, ...] = (VERSIONS_TABLE, ROUTES_TABLE, EVENTS_TABLE, METRICS_TABLE, WORKERS_TABLE)


def _credential(settings: StorageSettings) -> TokenCredential:
    # Imported lazily: azure-identity is only needed for identity-based connections.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if (settings.credential or "").lower() == "managedidentity":
        if settings.client_id:
            return ManagedIdentityCredential(client_id=settings.client_id)
        return ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=settings.client_id)


def blob_service(settings: StorageSettings) -> BlobServiceClient:
    if settings.connection_string:
        return BlobServiceClient.from_connection_string(settings.connection_string)
    assert settings.blob_service_uri is not None
    return BlobServiceClient(settings.blob_service_uri, credential=_credential(settings))


def table_service(settings: StorageSettings) -> TableServiceClient:
    if settings.connection_string:
        return TableServiceClient.from_connection_string(settings.connection_string)
    assert settings.table_service_uri is not None
    return TableServiceClient(settings.table_service_uri, credential=_credential(settings))


def ensure_layout(blobs: BlobServiceClient, tables: TableServiceClient) -> None:
    """Create every container and table Lepton uses; safe to call again (idempotent)."""
    for name in CONTAINERS:
        with contextlib.suppress(ResourceExistsError):
            blobs.create_container(name)
    for name in TABLES:
        tables.create_table_if_not_exists(name)
