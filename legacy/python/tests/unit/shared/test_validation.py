"""ONNX validation on real files in ONNX Runtime: parsing, limits, compatibility, smoke test."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper

from lepton.dev import sample_models
from lepton.shared.errors import InvalidModel
from lepton.shared.names import Bump
from lepton.shared.records import Signature, TensorSpec
from lepton.shared.validation import (
    ValidationLimits,
    check_compatible,
    session_for,
    signature_of,
    validate_model_file,
)


@pytest.fixture(scope="module")
def train() -> sample_models.Dataset:
    return sample_models.digits()[0]


def write(tmp_path: Path, data: bytes, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def digits_signature(tmp_path: Path, train: sample_models.Dataset) -> Signature:
    return signature_of(session_for(write(tmp_path, sample_models.better_digits(train), "p.onnx")))


def test_valid_model_returns_its_signature(tmp_path: Path, train: sample_models.Dataset) -> None:
    sig = validate_model_file(
        write(tmp_path, sample_models.better_digits(train)),
        production=None,
        bump=Bump.INITIAL,
        breaking=False,
    )
    assert sig.inputs == (TensorSpec("input", "float", (None, 64)),)
    assert [o.name for o in sig.outputs] == ["label", "probabilities"]


def test_non_onnx_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        validate_model_file(
            write(tmp_path, b"\x00garbage\xff" * 10),
            production=None,
            bump=Bump.INITIAL,
            breaking=False,
        )


def test_size_limit(tmp_path: Path, train: sample_models.Dataset) -> None:
    with pytest.raises(InvalidModel, match="over the limit of 100"):
        validate_model_file(
            write(tmp_path, sample_models.better_digits(train)),
            production=None,
            bump=Bump.INITIAL,
            breaking=False,
            limits=ValidationLimits(max_bytes=100),
        )


def test_opset_limit(tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match=r"uses opset 17; Lepton accepts 7\.\.10"):
        validate_model_file(
            write(tmp_path, sample_models.scaled_identity(2.0)),
            production=None,
            bump=Bump.INITIAL,
            breaking=False,
            limits=ValidationLimits(max_opset=10),
        )


def test_nan_output_fails_the_smoke_test(tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match="non-finite value"):
        validate_model_file(
            write(tmp_path, sample_models.always_nan()),
            production=None,
            bump=Bump.INITIAL,
            breaking=False,
        )


def test_declared_output_shape_must_match(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "liar",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(InvalidModel, match="declared shape"):
        validate_model_file(
            write(tmp_path, model.SerializeToString()),
            production=None,
            bump=Bump.INITIAL,
            breaking=False,
        )


def test_incompatible_minor_is_refused_with_the_differences(
    tmp_path: Path, train: sample_models.Dataset
) -> None:
    production = digits_signature(tmp_path, train)
    with pytest.raises(InvalidModel) as err:
        validate_model_file(
            write(tmp_path, sample_models.broken_signature_digits(train)),
            production=production,
            bump=Bump.MINOR,
            breaking=False,
        )
    message = str(err.value)
    assert "input 'input' shape changed from [None, 64] to [None, 32]" in message
    assert "new major version" in message


def test_breaking_major_may_change_the_signature(
    tmp_path: Path, train: sample_models.Dataset
) -> None:
    production = digits_signature(tmp_path, train)
    path = write(tmp_path, sample_models.broken_signature_digits(train))
    with pytest.raises(InvalidModel, match='declare "breaking": true'):
        validate_model_file(path, production=production, bump=Bump.MAJOR, breaking=False)
    sig = validate_model_file(path, production=production, bump=Bump.MAJOR, breaking=True)
    assert sig.inputs[0].shape == (None, 32)


def test_compatibility_rules() -> None:
    prod = Signature((TensorSpec("x", "float", (None, 4)),), (TensorSpec("y", "float", (None,)),))
    same = Signature(
        (TensorSpec("x", "float", (None, 4)),),
        (TensorSpec("y", "float", (None,)), TensorSpec("extra", "int64", (None,))),
    )
    assert check_compatible(same, prod) == []  # extra outputs are fine
    fixed = Signature((TensorSpec("x", "float", (8, 4)),), prod.outputs)
    assert "fixed a dimension" in check_compatible(fixed, prod)[0]
    retyped = Signature((TensorSpec("x", "double", (None, 4)),), prod.outputs)
    assert "dtype changed from float to double" in check_compatible(retyped, prod)[0]
    more = Signature((*prod.inputs, TensorSpec("z", "float", (None,))), ())
    problems = check_compatible(more, prod)
    assert any("new required input(s) ['z']" in p for p in problems)
    assert any("output 'y' is missing" in p for p in problems)
