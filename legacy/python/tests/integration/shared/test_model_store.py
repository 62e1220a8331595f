"""The model store on a real Azurite: streamed uploads, immutability, cache, manifests, datasets.

Every refusal shows its message and that nothing became visible: no model blob, no manifest,
and an earlier version's file and manifest untouched.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest

from lepton.shared.errors import (
    BlobNotFound,
    InvalidDataset,
    InvalidInput,
    InvalidManifest,
    InvalidModelName,
    InvalidVersion,
    PayloadTooLarge,
    VersionConflict,
)
from lepton.shared.manifest import Batching, Manifest, parse_manifest
from lepton.shared.model_store import BlobModelStore
from lepton.shared.settings import ModelStoreSettings
from lepton.shared.storage import DATASETS_CONTAINER, MODELS_CONTAINER
from tests.conftest import Storage

pytestmark = pytest.mark.azurite


class CountingReader(io.BytesIO):
    """A source that records the largest single read: the upload must stream, not slurp."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


def _blob_names(storage: Storage, container: str) -> list[str]:
    return sorted(b.name for b in storage.blobs.get_container_client(container).list_blobs())


@pytest.fixture
def store(storage: Storage, store_settings: ModelStoreSettings) -> BlobModelStore:
    return BlobModelStore(storage.blobs, store_settings)


def test_upload_streams_records_sha256_and_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    store = BlobModelStore(
        storage.blobs, ModelStoreSettings(max_model_bytes=16 * 2**20, cache_dir=tmp_path)
    )
    data = np.random.default_rng(0).bytes(9 * 2**20)  # three blocks at the store's 4 MiB
    source = CountingReader(data)
    stored = store.upload_model("digits", "1.0.0", source, Manifest(dataset="digits"))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.size, stored.path) == (len(data), "digits/1.0.0/model.onnx")
    assert source.largest_read < len(data)  # read in blocks, never the whole file at once
    assert store.stat_model("digits", "1.0.0") == stored
    manifest = store.get_manifest("digits", "1.0.0")
    assert manifest is not None and manifest.dataset == "digits"

    again = store.upload_model("digits", "1.0.0", io.BytesIO(data))
    assert again == stored
    assert _blob_names(storage, MODELS_CONTAINER) == [
        "digits/1.0.0/lepton.json",
        "digits/1.0.0/model.onnx",
    ]


def test_a_different_file_for_an_existing_version_is_refused_and_changes_nothing(
    store: BlobModelStore,
) -> None:
    original = b"onnx-bytes-v1" * 100
    store.upload_model("digits", "1.0.0", io.BytesIO(original), Manifest(dataset="digits"))
    with pytest.raises(VersionConflict, match="already exists with different content") as err:
        store.upload_model(
            "digits", "1.0.0", io.BytesIO(b"something else"), Manifest(dataset="other")
        )
    assert "publish the change as a new version" in str(err.value)
    assert store.stat_model("digits", "1.0.0").sha256 == hashlib.sha256(original).hexdigest()
    manifest = store.get_manifest("digits", "1.0.0")
    assert manifest is not None and manifest.dataset == "digits"  # manifest not overwritten


def test_two_racing_uploads_of_one_version_leave_exactly_one_file(
    store: BlobModelStore,
) -> None:
    payloads = [bytes([i]) * 200_000 for i in range(2)]
    outcomes: list[object] = [None, None]

    def push(i: int) -> None:
        try:
            outcomes[i] = store.upload_model("digits", "2.0.0", io.BytesIO(payloads[i]))
        except VersionConflict as err:
            outcomes[i] = err

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = store.stat_model("digits", "2.0.0")
    winners = [o for o in outcomes if not isinstance(o, VersionConflict)]
    assert len(winners) == 1, outcomes
    assert stored.sha256 in {hashlib.sha256(p).hexdigest() for p in payloads}
    assert winners[0] == stored


def test_oversize_upload_is_refused_before_anything_is_visible(
    storage: Storage, tmp_path: Path
) -> None:
    store = BlobModelStore(
        storage.blobs, ModelStoreSettings(max_model_bytes=1000, cache_dir=tmp_path)
    )
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 1000 bytes") as err:
        store.upload_model("digits", "1.0.0", io.BytesIO(b"x" * 1001), Manifest())
    assert "LEPTON_MAX_MODEL_BYTES" in str(err.value)
    assert _blob_names(storage, MODELS_CONTAINER) == []  # neither the file nor the manifest
    with pytest.raises(BlobNotFound):
        store.stat_model("digits", "1.0.0")


def test_empty_upload_is_refused(store: BlobModelStore, storage: Storage) -> None:
    with pytest.raises(InvalidInput, match="the model file is empty; nothing was stored"):
        store.upload_model("digits", "1.0.0", io.BytesIO(b""))
    assert _blob_names(storage, MODELS_CONTAINER) == []


@pytest.mark.parametrize(
    ("model", "version", "error", "message"),
    [
        ("../etc", "1.0.0", InvalidModelName, "model name"),
        ("digits/../../x", "1.0.0", InvalidModelName, "model name"),
        ("Digits", "1.0.0", InvalidModelName, "model name"),
        ("digits", "1.0", InvalidVersion, "SemVer"),
        ("digits", "../1.0.0", InvalidVersion, "SemVer"),
    ],
)
def test_invalid_names_and_versions_are_refused_before_any_write(
    storage: Storage,
    model: str,
    version: str,
    error: type[Exception],
    message: str,
) -> None:
    store = BlobModelStore(storage.blobs)
    with pytest.raises(error, match=message):
        store.upload_model(model, version, io.BytesIO(b"data"), Manifest())
    assert _blob_names(storage, MODELS_CONTAINER) == []


def test_download_verifies_sha256_and_caches_by_it(
    store: BlobModelStore, store_settings: ModelStoreSettings, storage: Storage
) -> None:
    data = b"model-bytes" * 1000
    stored = store.upload_model("digits", "1.0.0", io.BytesIO(data))
    path = store.download_model("digits", "1.0.0", stored.sha256)
    assert path.read_bytes() == data
    assert path.is_relative_to(store_settings.cache_dir) and stored.sha256 in path.name
    # A second version with the same bytes resolves to the same cached file.
    store.upload_model("digits", "1.0.1", io.BytesIO(data))
    assert store.download_model("digits", "1.0.1", stored.sha256) == path

    with pytest.raises(VersionConflict, match="the blob was replaced after registration"):
        store.download_model("digits", "1.0.0", "0" * 64)
    assert not list(store_settings.cache_dir.rglob("*.part"))  # no partial file left behind


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"task": "ranking"}', "task must be 'classification' or 'regression'"),
        (b'{"colour": "blue"}', "unknown keys"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_corrupt_manifest_is_refused_with_the_reason(
    store: BlobModelStore, storage: Storage, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest(raw)
    # Uploaded by another tool, it is refused when read, and the model file stays readable.
    store.upload_model("digits", "1.0.0", io.BytesIO(b"model"))
    storage.blobs.get_container_client(MODELS_CONTAINER).upload_blob(
        "digits/1.0.0/lepton.json", raw, overwrite=True
    )
    with pytest.raises(InvalidManifest, match=message):
        store.get_manifest("digits", "1.0.0")
    assert store.stat_model("digits", "1.0.0").size == len(b"model")


def test_manifest_round_trips_through_the_store(store: BlobModelStore) -> None:
    manifest = Manifest(
        dataset="digits",
        labels=("zero", "one"),
        policy={"steps_bp": [100, 10_000]},
        batching=Batching(max_batch_size=8, max_delay_ms=1.5),
        breaking=True,
        metadata={"owner": "ml-platform"},
    )
    store.upload_model("digits", "2.0.0", io.BytesIO(b"m"), manifest)
    assert store.get_manifest("digits", "2.0.0") == manifest
    assert store.get_manifest("digits", "9.9.9") is None


def test_datasets_round_trip_and_bad_ones_are_refused(
    store: BlobModelStore, storage: Storage
) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1], np.int64)
    assert store.put_dataset("digits", "holdout", x, y) == "digits/holdout.npz"
    got_x, got_y = store.get_dataset("digits", "holdout")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)

    with pytest.raises(InvalidDataset, match="at least one row"):
        store.put_dataset("digits", "empty", np.zeros((0, 3), np.float32), np.zeros(0))
    with pytest.raises(InvalidDataset):
        store.put_dataset("digits", "ragged", x, y[:2])
    assert _blob_names(storage, DATASETS_CONTAINER) == ["digits/holdout.npz"]

    datasets = storage.blobs.get_container_client(DATASETS_CONTAINER)
    only_x = io.BytesIO()
    np.savez(only_x, X=x)
    datasets.upload_blob("digits/nolabels.npz", only_x.getvalue())
    with pytest.raises(InvalidDataset, match="must hold arrays 'X' and 'y'"):
        store.get_dataset("digits", "nolabels")
    datasets.upload_blob("digits/garbage.npz", b"not a zip file")
    with pytest.raises(InvalidDataset, match=r"not a valid \.npz file"):
        store.get_dataset("digits", "garbage")
    with pytest.raises(BlobNotFound, match="upload it with `lepton push --dataset`"):
        store.get_dataset("digits", "missing")
