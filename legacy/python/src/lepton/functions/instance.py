"""Lifecycle orchestration instance ids, derived from model, version and content hash.

The same upload always maps to the same id, so a duplicate blob event or a repeated HTTP start
finds the running lifecycle instead of starting a second one; a different file under the same
version (refused by the registry anyway) would get a different id.
"""

from __future__ import annotations

from lepton.shared.names import SemVer, validate_model_name


def lifecycle_instance_id(model: str, version: str, sha256: str) -> str:
    validate_model_name(model)
    SemVer.parse(version)
    # '+' (build metadata) is not URL-path safe in the status URLs; '_' never occurs in SemVer.
    return f"lepton-{model}-{version.replace('+', '_')}-{sha256[:16]}"
