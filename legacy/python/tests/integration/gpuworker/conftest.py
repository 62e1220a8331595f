"""Fixtures of the worker's integration tests: a registry helper over the real Azurite."""

from __future__ import annotations

import pytest

from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage
from tests.integration.gpuworker._harness import Registry, make_registry


@pytest.fixture
def reg(storage: Storage, store_settings: ModelStoreSettings) -> Registry:
    return make_registry(storage.blobs, storage.tables, store_settings)
