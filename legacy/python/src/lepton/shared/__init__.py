"""Lepton's pure domain and storage layer: names, lifecycle, registry, model store, telemetry.

Imports neither ``lepton.functions`` nor ``lepton.gpuworker`` (a test checks it).
"""

from lepton.shared.errors import (
    BlobNotFound,
    ConcurrencyConflict,
    ConfigurationError,
    Conflict,
    IllegalTransition,
    InvalidDataset,
    InvalidInput,
    InvalidManifest,
    InvalidModel,
    InvalidModelName,
    InvalidPolicy,
    InvalidRoutes,
    InvalidVersion,
    LeptonError,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    VersionConflict,
    VersionNotFound,
)
from lepton.shared.lifecycle import ACTIVE_STAGES, TERMINAL_STAGES, Stage, check_transition
from lepton.shared.manifest import Batching, Manifest, Task, parse_manifest
from lepton.shared.model_store import BlobModelStore, ModelStore, StoredModel, model_blob_path
from lepton.shared.names import Bump, SemVer, parse_version, validate_model_name
from lepton.shared.records import AuditEvent, ModelVersion, Routes, Signature, TensorSpec
from lepton.shared.registry import Registry, TableRegistry
from lepton.shared.settings import ModelStoreSettings, StorageSettings

__all__ = [
    "ACTIVE_STAGES",
    "TERMINAL_STAGES",
    "AuditEvent",
    "Batching",
    "BlobModelStore",
    "BlobNotFound",
    "Bump",
    "ConcurrencyConflict",
    "ConfigurationError",
    "Conflict",
    "IllegalTransition",
    "InvalidDataset",
    "InvalidInput",
    "InvalidManifest",
    "InvalidModel",
    "InvalidModelName",
    "InvalidPolicy",
    "InvalidRoutes",
    "InvalidVersion",
    "LeptonError",
    "Manifest",
    "ModelNotFound",
    "ModelStore",
    "ModelStoreSettings",
    "ModelVersion",
    "NotFound",
    "PayloadTooLarge",
    "Registry",
    "Routes",
    "SemVer",
    "Signature",
    "Stage",
    "StorageSettings",
    "StoredModel",
    "TableRegistry",
    "Task",
    "TensorSpec",
    "VersionConflict",
    "VersionNotFound",
    "check_transition",
    "model_blob_path",
    "parse_manifest",
    "parse_version",
    "validate_model_name",
]
