"""Errors raised by ``lepton.shared``.

Every error a caller can act on derives from :class:`LeptonError` and says what to do next.
Bindings map the tree to HTTP in one place (``lepton.functions.http_errors`` and the worker's
server); activities let these propagate so durable retries and failure details work.

    LeptonError
    ├── InvalidInput                 400  the caller sent something malformed
    │   ├── InvalidModelName
    │   ├── InvalidVersion
    │   ├── InvalidManifest
    │   ├── InvalidDataset
    │   ├── InvalidRoutes
    │   ├── InvalidPolicy
    │   └── InvalidModel             the ONNX file itself is unusable
    ├── NotFound                     404
    │   ├── ModelNotFound
    │   ├── VersionNotFound
    │   └── BlobNotFound
    ├── Conflict                     409  the request contradicts the stored state
    │   ├── VersionConflict          same version, different content
    │   ├── ConcurrencyConflict      someone else changed the record first (ETag)
    │   └── IllegalTransition        the lifecycle does not allow this move
    ├── PayloadTooLarge              413
    └── ConfigurationError           the process environment is incomplete or wrong
"""

from __future__ import annotations


class LeptonError(Exception):
    """Base of every Lepton error; ``str(err)`` is the message shown to users."""

    status_code: int = 500
    code: str = "internal"


class InvalidInput(LeptonError, ValueError):
    status_code = 400
    code = "invalid_input"


class InvalidModelName(InvalidInput):
    code = "invalid_model_name"


class InvalidVersion(InvalidInput):
    code = "invalid_version"


class InvalidManifest(InvalidInput):
    code = "invalid_manifest"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


class InvalidRoutes(InvalidInput):
    code = "invalid_routes"


class InvalidPolicy(InvalidInput):
    code = "invalid_policy"


class InvalidModel(InvalidInput):
    code = "invalid_model"


class NotFound(LeptonError, LookupError):
    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class Conflict(LeptonError):
    status_code = 409
    code = "conflict"


class VersionConflict(Conflict):
    code = "version_conflict"


class ConcurrencyConflict(Conflict):
    code = "concurrency_conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PayloadTooLarge(LeptonError):
    status_code = 413
    code = "payload_too_large"


class ConfigurationError(LeptonError):
    code = "configuration_error"
