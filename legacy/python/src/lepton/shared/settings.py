"""Typed settings read from the environment once, named as Azure Functions names them.

Storage is either a connection string (``AzureWebJobsStorage``; Azurite locally) or identity-based
(``AzureWebJobsStorage__accountName`` or ``__blobServiceUri``/``__tableServiceUri``, with
``__credential=managedidentity`` and ``__clientId`` for a user-assigned identity), exactly the
settings the Functions host reads, so one set of app settings serves the host and Lepton's code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lepton.shared.errors import ConfigurationError

STORAGE_CONNECTION = "AzureWebJobsStorage"
METRICS_RETENTION_HOURS = "LEPTON_METRICS_RETENTION_HOURS"
METRICS_RETENTION_SCHEDULE = "LEPTON_METRICS_RETENTION_SCHEDULE"
_MIB = 1024 * 1024

# Every environment variable Lepton reads, so the Bicep test can check the template sets them.
APP_SETTING_NAMES: tuple[str, ...] = (
    STORAGE_CONNECTION,
    f"{STORAGE_CONNECTION}__accountName",
    f"{STORAGE_CONNECTION}__blobServiceUri",
    f"{STORAGE_CONNECTION}__tableServiceUri",
    f"{STORAGE_CONNECTION}__queueServiceUri",
    f"{STORAGE_CONNECTION}__credential",
    f"{STORAGE_CONNECTION}__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "LEPTON_MAX_MODEL_BYTES",
    "LEPTON_CACHE_DIR",
    METRICS_RETENTION_HOURS,
    METRICS_RETENTION_SCHEDULE,
)


@dataclass(frozen=True)
class StorageSettings:
    """Where the storage account is and how to authenticate to it."""

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None  # "managedidentity" selects ManagedIdentityCredential
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        env = os.environ if env is None else env
        prefix = STORAGE_CONNECTION
        conn = env.get(prefix, "").strip()
        if conn:
            return cls(connection_string=conn)
        account = env.get(f"{prefix}__accountName", "").strip()
        blob_uri = env.get(f"{prefix}__blobServiceUri", "").strip()
        table_uri = env.get(f"{prefix}__tableServiceUri", "").strip()
        if account:
            blob_uri = blob_uri or f"https://{account}.blob.core.windows.net"
            table_uri = table_uri or f"https://{account}.table.core.windows.net"
        if not (blob_uri and table_uri):
            raise ConfigurationError(
                f"storage is not configured: set {prefix} to a connection string (for Azurite: "
                f"'UseDevelopmentStorage=true' or the one `make run` prints), or set "
                f"{prefix}__accountName (or both {prefix}__blobServiceUri and "
                f"{prefix}__tableServiceUri) for identity-based access"
            )
        return cls(
            blob_service_uri=blob_uri,
            table_service_uri=table_uri,
            credential=env.get(f"{prefix}__credential") or None,
            client_id=env.get(f"{prefix}__clientId") or None,
        )


@dataclass(frozen=True)
class ModelStoreSettings:
    """Limits and local cache of the model store."""

    max_model_bytes: int = 512 * _MIB
    cache_dir: Path = Path(".lepton/cache")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelStoreSettings:
        env = os.environ if env is None else env
        raw = env.get("LEPTON_MAX_MODEL_BYTES", "").strip()
        try:
            limit = int(raw) if raw else cls.max_model_bytes
        except ValueError:
            raise ConfigurationError(
                f"LEPTON_MAX_MODEL_BYTES must be a whole number of bytes, got {raw!r}"
            ) from None
        if limit <= 0:
            raise ConfigurationError(f"LEPTON_MAX_MODEL_BYTES must be positive, got {limit}")
        cache = env.get("LEPTON_CACHE_DIR", "").strip()
        return cls(max_model_bytes=limit, cache_dir=Path(cache) if cache else cls.cache_dir)


@dataclass(frozen=True)
class MetricsRetentionSettings:
    """How long metric rollups are kept, and when the timer function deletes older windows.

    The retention must outlast the longest evidence a lifecycle reads back: a canary step sums
    the windows since its weight changed (window x (1 + max extensions)), and reports are written
    from them at the step's end; a week is far beyond any default policy.
    """

    retention_hours: int = 7 * 24
    # NCRONTAB with a seconds field, the only form a Flex Consumption timer accepts: hourly.
    schedule: str = "0 0 * * * *"

    @property
    def retention_s(self) -> int:
        return self.retention_hours * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsRetentionSettings:
        env = os.environ if env is None else env
        raw = env.get(METRICS_RETENTION_HOURS, "").strip()
        try:
            hours = int(raw) if raw else cls.retention_hours
        except ValueError:
            raise ConfigurationError(
                f"{METRICS_RETENTION_HOURS} must be a whole number of hours, got {raw!r}"
            ) from None
        if hours < 1:
            raise ConfigurationError(f"{METRICS_RETENTION_HOURS} must be at least 1, got {hours}")
        schedule = " ".join(env.get(METRICS_RETENTION_SCHEDULE, "").split()) or cls.schedule
        if len(schedule.split(" ")) != 6:
            raise ConfigurationError(
                f"{METRICS_RETENTION_SCHEDULE} must be an NCRONTAB expression with six fields "
                f"(second minute hour day month day-of-week, e.g. {cls.schedule!r} for hourly), "
                f"got {schedule!r}"
            )
        return cls(retention_hours=hours, schedule=schedule)
