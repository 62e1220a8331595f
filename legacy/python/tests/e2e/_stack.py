"""Helpers that start the whole local stack in-process on free ports for end-to-end tests."""

from __future__ import annotations

from pathlib import Path

from lepton.dev.api_client import ApiConfig, LeptonApi
from lepton.dev.app import functions_app
from lepton.dev.azurite import free_port
from lepton.dev.settings import DevSettings
from lepton.dev.stack import LocalStack
from lepton.shared.model_store import BlobModelStore
from lepton.shared.settings import StorageSettings
from lepton.shared.storage import blob_service


def stack_settings(data_dir: Path, connection_string: str) -> DevSettings:
    """Free ports, the session's Azurite, and a worker with short rollup windows."""
    return DevSettings(
        data_dir=data_dir,
        api_port=free_port(),
        worker_port=free_port(),
        durable_port=free_port(),
        storage_connection=connection_string,
        worker_window_s=1,
        worker_poll_interval_s=0.3,
    )


def start_stack(settings: DevSettings) -> LocalStack:
    return LocalStack(settings, functions_app()).start()


def api_for(settings: DevSettings) -> LeptonApi:
    return LeptonApi(ApiConfig(api_url=settings.api_url, worker_url=settings.worker_url))


def store_for(settings: DevSettings) -> BlobModelStore:
    assert settings.storage_connection is not None
    return BlobModelStore(
        blob_service(StorageSettings(connection_string=settings.storage_connection))
    )
