"""Sessions on real ONNX Runtime: signature checks, exact batching, failures, footprints."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from lepton.dev import sample_models
from lepton.gpuworker.errors import BatchFailed, InferenceFailed
from lepton.gpuworker.providers import choose_provider
from lepton.gpuworker.session import Item, OnnxVersion, estimate_footprint
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import InvalidInput, InvalidModel
from tests.unit.gpuworker import _models

CHOICE = choose_provider(WorkerSettings(intra_op_threads=1, provider="cpu"))


def _load(tmp_path: Path, onnx_bytes: bytes, max_batch_size: int = 32) -> OnnxVersion:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    return OnnxVersion("m", "1.0.0", path, CHOICE, max_batch_size=max_batch_size)


@pytest.fixture(scope="module")
def digits_bytes() -> bytes:
    train, _ = sample_models.digits()
    return sample_models.better_digits(train)


def _item(version: OnnxVersion, x: np.ndarray) -> Item:
    return version.prepare({"input": ("FP32", x)})


def test_batched_results_are_exactly_the_unbatched_ones(
    tmp_path: Path, digits_bytes: bytes
) -> None:
    v = _load(tmp_path, digits_bytes)
    _, test = sample_models.digits()
    sizes = [1, 3, 2, 5, 1]
    starts = np.cumsum([0, *sizes])
    items = [_item(v, test.x[a:b]) for a, b in itertools.pairwise(starts)]
    batched = v.run_items(items)
    for item, result in zip(items, batched, strict=True):
        alone = v.run_items([item])[0]
        assert result.outputs.keys() == alone.outputs.keys()
        for name in alone.outputs:
            np.testing.assert_array_equal(result.outputs[name], alone.outputs[name])
        assert result.batch_rows == sum(sizes)
        np.testing.assert_array_equal(result.top1, alone.outputs["label"])
        np.testing.assert_array_equal(result.scores, alone.outputs["probabilities"].max(axis=1))
    assert sum(r.compute_ms for r in batched) > 0


def test_mlp_batched_matches_unbatched(tmp_path: Path) -> None:
    v = _load(tmp_path, sample_models.mlp(width=128, depth=2, n_features=32))
    x = np.random.default_rng(0).standard_normal((6, 32)).astype(np.float32)
    items = [_item(v, x[i : i + 2]) for i in range(0, 6, 2)]
    batched = v.run_items(items)
    for item, result in zip(items, batched, strict=True):
        alone = v.run_items([item])[0].outputs["output"]
        # Same kernels, different row counts: allow only float rounding, nothing more.
        np.testing.assert_allclose(result.outputs["output"], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"pixels": ("FP32", np.zeros((1, 64), np.float32))}, "missing \\['input'\\]"),
        ({"input": ("FP64", np.zeros((1, 64)))}, "datatype FP64, expected FP32"),
        (
            {"input": ("FP32", np.zeros((1, 32), np.float32))},
            "shape \\[1, 32\\], expected \\[-1, 64\\]",
        ),
        ({"input": ("FP32", np.zeros((64,), np.float32))}, "shape \\[64\\]"),
        ({"input": ("FP32", np.zeros((0, 64), np.float32))}, "at least one row"),
    ],
)
def test_wrong_inputs_name_the_expected_signature(
    tmp_path: Path, digits_bytes: bytes, tensors: dict[str, tuple[str, np.ndarray]], message: str
) -> None:
    v = _load(tmp_path, digits_bytes)
    with pytest.raises(InvalidInput, match=message) as info:
        v.prepare(tensors)
    assert "expected signature inputs: input FP32[-1,64]" in str(info.value)
    assert "probabilities FP32[-1,10]" in str(info.value)


def test_nonfinite_outputs_are_flagged(tmp_path: Path) -> None:
    v = _load(tmp_path, sample_models.always_nan())
    result = v.run_items([_item(v, np.ones((2, 4), np.float32))])[0]
    assert result.nonfinite
    ok = _load(tmp_path, sample_models.scaled_identity(2.0))
    assert not ok.run_items([_item(ok, np.ones((2, 4), np.float32))])[0].nonfinite


def test_fixed_leading_dimension_disables_batching(tmp_path: Path) -> None:
    v = _load(tmp_path, _models.fixed_batch(rows=2), max_batch_size=64)
    assert not v.batchable and v.max_batch_size == 1
    out = v.run_items([_item(v, np.zeros((2, 4), np.float32))])[0]
    np.testing.assert_array_equal(out.outputs["output"], np.ones((2, 4), np.float32))
    with pytest.raises(InvalidInput, match="expected \\[2, 4\\]"):
        _item(v, np.zeros((3, 4), np.float32))


def test_outputs_without_one_row_per_input_row_fail_the_batch(tmp_path: Path) -> None:
    v = _load(tmp_path, _models.collapses_rows())
    items = [_item(v, np.ones((1, 4), np.float32)), _item(v, np.ones((2, 4), np.float32))]
    with pytest.raises(BatchFailed, match="1 rows for 3 input rows"):
        v.run_items(items)


def test_onnxruntime_errors_become_inference_failed(tmp_path: Path) -> None:
    v = _load(tmp_path, _models.raises_above_one_row())
    assert v.run_items([_item(v, np.ones((1, 4), np.float32))])[0].outputs["output"].shape == (1, 4)
    with pytest.raises(InferenceFailed, match="ONNX Runtime failed"):
        v.run_items([_item(v, np.ones((3, 4), np.float32))])


def test_footprint_comes_from_initializers(tmp_path: Path) -> None:
    small = tmp_path / "small.onnx"
    small.write_bytes(sample_models.scaled_identity(1.0))
    big = tmp_path / "big.onnx"
    big.write_bytes(sample_models.mlp(width=256, depth=2, n_features=64))
    weights = (64 * 256 + 256 + 256 * 256 + 256) * 4
    assert estimate_footprint(big) - estimate_footprint(small) == 2 * weights - 2 * 4
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(InvalidModel, match="not a readable ONNX file"):
        estimate_footprint(broken)


def test_warm_up_input_fits_the_signature(tmp_path: Path, digits_bytes: bytes) -> None:
    v = _load(tmp_path, digits_bytes)
    item = v.warm_up_item()
    assert item.rows == 1 and item.feeds["input"].shape == (1, 64)
