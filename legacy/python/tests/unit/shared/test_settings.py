"""Storage and model-store settings, named as Azure Functions names them, and the clients built.

The same app settings must serve the Functions host and Lepton's code: a connection string
(Azurite locally) or the identity-based ``AzureWebJobsStorage__*`` form. No network is touched:
building an SDK client does not connect, so these run as plain unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from lepton.shared.errors import ConfigurationError
from lepton.shared.settings import ModelStoreSettings, StorageSettings
from lepton.shared.storage import blob_service, table_service

AZURITE = "UseDevelopmentStorage=true"


def test_a_connection_string_wins_and_is_kept_out_of_repr() -> None:
    settings = StorageSettings.from_env(
        {"AzureWebJobsStorage": AZURITE, "AzureWebJobsStorage__accountName": "ignored"}
    )
    assert settings == StorageSettings(connection_string=AZURITE)
    assert not settings.uses_identity
    assert AZURITE not in repr(settings)  # a real one carries the account key
    assert blob_service(settings).url.startswith("http://127.0.0.1:10000/devstoreaccount1")
    assert table_service(settings).url.startswith("http://127.0.0.1:10002/devstoreaccount1")


def test_an_account_name_derives_the_service_uris_and_uses_the_managed_identity() -> None:
    settings = StorageSettings.from_env(
        {
            "AzureWebJobsStorage__accountName": "leptonprod",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
        }
    )
    assert settings.uses_identity
    assert settings.blob_service_uri == "https://leptonprod.blob.core.windows.net"
    assert settings.table_service_uri == "https://leptonprod.table.core.windows.net"
    blobs, tables = blob_service(settings), table_service(settings)
    assert blobs.account_name == "leptonprod"
    assert tables.account_name == "leptonprod"
    assert isinstance(blobs.credential, ManagedIdentityCredential)


def test_explicit_service_uris_win_over_the_derived_ones() -> None:
    settings = StorageSettings.from_env(
        {
            "AzureWebJobsStorage__accountName": "leptonprod",
            "AzureWebJobsStorage__blobServiceUri": "https://blobs.example.net",
        }
    )
    assert settings.blob_service_uri == "https://blobs.example.net"
    assert settings.table_service_uri == "https://leptonprod.table.core.windows.net"
    # Without __credential=managedidentity: DefaultAzureCredential (az login, env, identity).
    assert isinstance(blob_service(settings).credential, DefaultAzureCredential)


@pytest.mark.parametrize(
    "env",
    [{}, {"AzureWebJobsStorage": "  "}, {"AzureWebJobsStorage__blobServiceUri": "https://b"}],
    ids=["nothing", "blank", "blob-uri-only"],
)
def test_missing_storage_fails_fast_naming_every_way_to_set_it(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as err:
        StorageSettings.from_env(env)
    message = str(err.value)
    for name in (
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__tableServiceUri",
    ):
        assert name in message
    assert "UseDevelopmentStorage=true" in message


def test_model_store_limit_and_cache_are_read_and_a_bad_limit_names_the_variable(
    tmp_path: Path,
) -> None:
    settings = ModelStoreSettings.from_env(
        {"LEPTON_MAX_MODEL_BYTES": "1048576", "LEPTON_CACHE_DIR": str(tmp_path)}
    )
    assert (settings.max_model_bytes, settings.cache_dir) == (1048576, tmp_path)
    assert ModelStoreSettings.from_env({}) == ModelStoreSettings()
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ConfigurationError, match="LEPTON_MAX_MODEL_BYTES"):
            ModelStoreSettings.from_env({"LEPTON_MAX_MODEL_BYTES": bad})
