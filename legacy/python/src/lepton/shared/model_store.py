"""The model store over Blob storage: model files, manifests, datasets and reports.

Uploads stream in blocks, hashing as they go, and only commit the block list when the whole file
is within the size limit, so an oversize or interrupted upload leaves no blob behind. The commit is
conditional (``If-None-Match: *``): a version's file is immutable once written. Downloads land in a
local cache keyed by sha256 and are verified before they are used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import uuid
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

from lepton.shared.errors import (
    BlobNotFound,
    InvalidDataset,
    InvalidInput,
    PayloadTooLarge,
    VersionConflict,
)
from lepton.shared.manifest import MANIFEST_NAME, Manifest, parse_manifest
from lepton.shared.names import SemVer, validate_model_name
from lepton.shared.settings import ModelStoreSettings
from lepton.shared.storage import DATASETS_CONTAINER, MODELS_CONTAINER, REPORTS_CONTAINER

MODEL_FILE = "model.onnx"
_BLOCK_BYTES = 4 * 1024 * 1024
_SHA_METADATA = "sha256"
_REPORT_STAGE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class StoredModel:
    model: str
    version: str
    path: str  # blob name inside the models container
    sha256: str
    size: int


def model_blob_path(model: str, version: str) -> str:
    validate_model_name(model)
    SemVer.parse(version)
    return f"{model}/{version}/{MODEL_FILE}"


def parse_model_blob_path(path: str) -> tuple[str, str]:
    """``{model}/{version}/model.onnx`` → (model, version), validating both parts."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[2] != MODEL_FILE:
        raise InvalidInput(
            f"blob {path!r} is not a model upload: expected models/<model>/<version>/{MODEL_FILE}"
        )
    model, version = parts[0], parts[1]
    validate_model_name(model)
    SemVer.parse(version)
    return model, version


class ModelStore(Protocol):
    def upload_model(
        self, model: str, version: str, source: BinaryIO, manifest: Manifest | None = ...
    ) -> StoredModel: ...

    def stat_model(self, model: str, version: str) -> StoredModel: ...

    def download_model(self, model: str, version: str, sha256: str) -> Path: ...

    def get_manifest(self, model: str, version: str) -> Manifest | None: ...

    def put_dataset(self, model: str, name: str, x: np.ndarray, y: np.ndarray) -> str: ...

    def get_dataset(self, model: str, name: str) -> tuple[np.ndarray, np.ndarray]: ...

    def put_report(self, model: str, version: str, stage: str, report: dict[str, Any]) -> str: ...

    def put_report_png(self, model: str, version: str, stage: str, png: bytes) -> str: ...

    def get_report(self, model: str, version: str, stage: str) -> dict[str, Any]: ...

    def list_reports(self, model: str, version: str) -> list[str]: ...


class BlobModelStore:
    """:class:`ModelStore` over Azure Blob storage (or Azurite)."""

    def __init__(
        self, blobs: BlobServiceClient, settings: ModelStoreSettings | None = None
    ) -> None:
        self._blobs = blobs
        self._settings = settings or ModelStoreSettings()
        self._models = blobs.get_container_client(MODELS_CONTAINER)
        self._datasets = blobs.get_container_client(DATASETS_CONTAINER)
        self._reports = blobs.get_container_client(REPORTS_CONTAINER)

    @property
    def max_model_bytes(self) -> int:
        return self._settings.max_model_bytes

    # -- models -------------------------------------------------------------------------------

    def upload_model(
        self, model: str, version: str, source: BinaryIO, manifest: Manifest | None = None
    ) -> StoredModel:
        """Stream ``source`` to ``models/{model}/{version}/model.onnx``; idempotent per content.

        The manifest, if any, is written first, so whatever reacts to the model blob (the blob
        trigger) already finds it.
        """
        path = model_blob_path(model, version)
        client = self._models.get_blob_client(path)
        digest = hashlib.sha256()
        size = 0
        block_ids: list[BlobBlock] = []
        limit = self._settings.max_model_bytes
        # Blocks are staged (invisible, garbage-collected by the service if never committed)
        # while the hash and size accumulate; nothing becomes visible before the final check.
        while chunk := source.read(_BLOCK_BYTES):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"{model} {version}: the model file is larger than the limit of {limit} bytes "
                    "(LEPTON_MAX_MODEL_BYTES); nothing was stored"
                )
            digest.update(chunk)
            block_id = b64encode(uuid.uuid4().bytes).decode()
            client.stage_block(block_id, chunk, length=len(chunk))
            block_ids.append(BlobBlock(block_id=block_id))
        if size == 0:
            raise InvalidInput(f"{model} {version}: the model file is empty; nothing was stored")
        sha256 = digest.hexdigest()
        existing = self._existing(model, version)
        if existing is not None:
            return self._same_or_conflict(existing, sha256)
        if manifest is not None:
            self.put_manifest(model, version, manifest)
        try:
            client.commit_block_list(
                block_ids,
                metadata={_SHA_METADATA: sha256},
                content_settings=ContentSettings(content_type="application/octet-stream"),
                # IfMissing alone sends If-None-Match: *: a version's file is written once, even
                # when two pushes race (the SDK takes no etag with this condition).
                match_condition=MatchConditions.IfMissing,
            )
        except (ResourceExistsError, HttpResponseError) as err:
            if isinstance(err, ResourceExistsError) or err.status_code in (409, 412):
                raced = self._existing(model, version)
                if raced is not None:
                    return self._same_or_conflict(raced, sha256)
            raise
        return StoredModel(model, version, path, sha256, size)

    def _same_or_conflict(self, existing: StoredModel, sha256: str) -> StoredModel:
        if existing.sha256 != sha256:
            raise VersionConflict(
                f"{existing.model} {existing.version} already exists with different content "
                f"(sha256 {existing.sha256[:12]}…, this upload {sha256[:12]}…); model files are "
                "immutable: publish the change as a new version"
            )
        return existing

    def _existing(self, model: str, version: str) -> StoredModel | None:
        try:
            return self.stat_model(model, version)
        except BlobNotFound:
            return None

    def stat_model(self, model: str, version: str) -> StoredModel:
        path = model_blob_path(model, version)
        try:
            props = self._models.get_blob_client(path).get_blob_properties()
        except ResourceNotFoundError:
            raise BlobNotFound(f"no model file at models/{path}") from None
        sha256 = (props.metadata or {}).get(_SHA_METADATA, "")
        if not sha256:
            # Uploaded by another tool (portal, azcopy): hash it once and record the result.
            sha256 = self._hash_blob(path)
            self._models.get_blob_client(path).set_blob_metadata(
                {**(props.metadata or {}), _SHA_METADATA: sha256},
                etag=props.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return StoredModel(model, version, path, sha256, int(props.size))

    def _hash_blob(self, path: str) -> str:
        digest = hashlib.sha256()
        for chunk in self._models.get_blob_client(path).download_blob().chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def download_model(self, model: str, version: str, sha256: str) -> Path:
        """Return a local path to the verified model file, downloading it once per sha256."""
        cache = self._settings.cache_dir / sha256[:2]
        target = cache / f"{sha256}.onnx"
        if target.exists():
            return target
        cache.mkdir(parents=True, exist_ok=True)
        path = model_blob_path(model, version)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=cache, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    stream = self._models.get_blob_client(path).download_blob()
                except ResourceNotFoundError:
                    raise BlobNotFound(f"no model file at models/{path}") from None
                for chunk in stream.chunks():
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise VersionConflict(
                    f"models/{path} has sha256 {digest.hexdigest()[:12]}…, but the registry "
                    f"recorded {sha256[:12]}…: the blob was replaced after registration"
                )
            os.replace(tmp_name, target)  # atomic: readers never see a partial file
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return target

    def put_manifest(self, model: str, version: str, manifest: Manifest) -> str:
        path = f"{model}/{version}/{MANIFEST_NAME}"
        model_blob_path(model, version)
        body = json.dumps(manifest.to_json(), indent=2).encode()
        self._models.upload_blob(path, body, overwrite=True)
        return path

    def get_manifest(self, model: str, version: str) -> Manifest | None:
        """The version's parsed manifest, ``None`` if it has none; raises if it is invalid."""
        model_blob_path(model, version)
        try:
            raw = self._models.download_blob(f"{model}/{version}/{MANIFEST_NAME}").readall()
        except ResourceNotFoundError:
            return None
        return parse_manifest(raw)

    # -- datasets -----------------------------------------------------------------------------

    def put_dataset(self, model: str, name: str, x: np.ndarray, y: np.ndarray) -> str:
        validate_model_name(model)
        _check_dataset(name, x, y)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, X=x, y=y)
        path = f"{model}/{name}.npz"
        self._datasets.upload_blob(path, buffer.getvalue(), overwrite=True)
        return path

    def get_dataset(self, model: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        validate_model_name(model)
        validate_model_name(name)
        path = f"{model}/{name}.npz"
        try:
            raw = self._datasets.download_blob(path).readall()
        except ResourceNotFoundError:
            raise BlobNotFound(
                f"dataset datasets/{path} not found; upload it with `lepton push --dataset`"
            ) from None
        try:
            # allow_pickle=False: a dataset must never be able to run code when loaded.
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                if "X" not in npz or "y" not in npz:
                    raise InvalidDataset(
                        f"datasets/{path} must hold arrays 'X' and 'y', has {sorted(npz.files)}"
                    )
                x, y = npz["X"], npz["y"]
        except (ValueError, OSError) as err:
            raise InvalidDataset(f"datasets/{path} is not a valid .npz file: {err}") from None
        _check_dataset(name, x, y)
        return x, y

    # -- reports ------------------------------------------------------------------------------

    def _report_path(self, model: str, version: str, stage: str, ext: str) -> str:
        model_blob_path(model, version)
        if not stage or not set(stage) <= _REPORT_STAGE_CHARS:
            raise InvalidInput(f"report name {stage!r} must be lowercase letters, digits, - and _")
        return f"{model}/{version}/{stage}.{ext}"

    def put_report(self, model: str, version: str, stage: str, report: dict[str, Any]) -> str:
        path = self._report_path(model, version, stage, "json")
        body = json.dumps(report, indent=2, sort_keys=True, default=str).encode()
        self._reports.upload_blob(
            path,
            body,
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )
        return path

    def put_report_png(self, model: str, version: str, stage: str, png: bytes) -> str:
        path = self._report_path(model, version, stage, "png")
        self._reports.upload_blob(
            path, png, overwrite=True, content_settings=ContentSettings(content_type="image/png")
        )
        return path

    def get_report(self, model: str, version: str, stage: str) -> dict[str, Any]:
        path = self._report_path(model, version, stage, "json")
        try:
            data: dict[str, Any] = json.loads(self._reports.download_blob(path).readall())
        except ResourceNotFoundError:
            raise BlobNotFound(f"no report at reports/{path}") from None
        return data

    def list_reports(self, model: str, version: str) -> list[str]:
        model_blob_path(model, version)
        prefix = f"{model}/{version}/"
        return sorted(b.name[len(prefix) :] for b in self._reports.list_blobs(prefix))


def _check_dataset(name: str, x: np.ndarray, y: np.ndarray) -> None:
    validate_model_name(name)
    if x.ndim < 1 or x.shape[0] == 0:
        raise InvalidDataset(f"dataset {name!r}: X must have at least one row")
    if y.shape[0] != x.shape[0]:
        raise InvalidDataset(
            f"dataset {name!r}: X has {x.shape[0]} rows but y has {y.shape[0]}; they must match"
        )
    if object in (x.dtype, y.dtype):
        raise InvalidDataset(f"dataset {name!r}: object arrays are not allowed")
