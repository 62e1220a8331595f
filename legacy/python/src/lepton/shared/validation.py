"""Validation of an uploaded ONNX model before it may be evaluated (DESIGN.md §3 *validate*).

A model passes when it parses as ONNX within the opset and size limits, loads in ONNX Runtime, has
a signature compatible with the production version (unless the manifest declares a ``breaking``
major version), and a smoke inference on generated input returns finite values of the declared
shape. Every failure raises :class:`InvalidModel` saying what is wrong and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from lepton.shared.errors import InvalidModel
from lepton.shared.names import Bump
from lepton.shared.records import Signature, TensorSpec

# Oldest/newest default-domain opsets we accept: below 7 ORT support is patchy, above the
# installed runtime's own maximum it cannot load the model anyway.
MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()
SMOKE_BATCH = 2
_SYMBOLIC_DIM = 2  # size given to symbolic (non-batch) dims in the smoke input

_ORT_TO_NUMPY: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class ValidationLimits:
    max_bytes: int = 512 * 1024 * 1024
    min_opset: int = MIN_OPSET
    max_opset: int = MAX_OPSET


def session_for(path: Path) -> ort.InferenceSession:
    """A CPU ONNX Runtime session (validation and evaluation never need the GPU)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would drown the clear message we raise
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def signature_of(session: ort.InferenceSession) -> Signature:
    def spec(arg: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
        return TensorSpec(arg.name, str(arg.type).removeprefix("tensor(").rstrip(")"), shape)

    return Signature(
        tuple(spec(a) for a in session.get_inputs()),
        tuple(spec(a) for a in session.get_outputs()),
    )


def check_compatible(candidate: Signature, production: Signature) -> list[str]:
    """Problems that would break production callers; empty when compatible.

    Every production input must still exist with the same dtype and a shape that accepts what it
    accepted before; every production output must still be produced with the same dtype and rank.
    """
    problems: list[str] = []
    cand_in = {t.name: t for t in candidate.inputs}
    for old in production.inputs:
        new = cand_in.get(old.name)
        if new is None:
            problems.append(f"input {old.name!r} is missing")
            continue
        problems += _spec_problems("input", old, new)
    extra = set(cand_in) - {t.name for t in production.inputs}
    if extra:
        problems.append(f"new required input(s) {sorted(extra)} that callers do not send")
    cand_out = {t.name: t for t in candidate.outputs}
    for old in production.outputs:
        new = cand_out.get(old.name)
        if new is None:
            problems.append(f"output {old.name!r} is missing")
            continue
        problems += _spec_problems("output", old, new)
    return problems


def _spec_problems(kind: str, old: TensorSpec, new: TensorSpec) -> list[str]:
    if old.dtype != new.dtype:
        return [f"{kind} {old.name!r} dtype changed from {old.dtype} to {new.dtype}"]
    if len(old.shape) != len(new.shape):
        return [f"{kind} {old.name!r} rank changed from {list(old.shape)} to {list(new.shape)}"]
    for a, b in zip(old.shape, new.shape, strict=True):
        if a is not None and b is not None and a != b:
            return [
                f"{kind} {old.name!r} shape changed from {list(old.shape)} to {list(new.shape)}"
            ]
        if a is None and b is not None and kind == "input":
            return [
                f"{kind} {old.name!r} fixed a dimension callers vary: "
                f"{list(old.shape)} → {list(new.shape)}"
            ]
    return []


def smoke_input(session: ort.InferenceSession, batch: int = SMOKE_BATCH) -> dict[str, np.ndarray]:
    """Deterministic generated input for every model input (first symbolic dim = batch)."""
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for arg in session.get_inputs():
        dtype = _ORT_TO_NUMPY.get(str(arg.type))
        if dtype is None:
            raise InvalidModel(
                f"input {arg.name!r} has type {arg.type}, which Lepton cannot generate smoke "
                "input for; use float, double, int or bool tensor inputs"
            )
        shape = [
            d if isinstance(d, int) and d > 0 else (batch if i == 0 else _SYMBOLIC_DIM)
            for i, d in enumerate(arg.shape)
        ]
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            feeds[arg.name] = rng.integers(0, 4, size=shape).astype(dtype)
    return feeds


def smoke_test(session: ort.InferenceSession, signature: Signature) -> None:
    """Run one generated batch; outputs must be finite and match their declared shapes."""
    feeds = smoke_input(session)
    try:
        outputs = session.run(None, feeds)
    except Exception as err:  # ORT raises its own exception types per failure kind
        raise InvalidModel(f"smoke inference failed in ONNX Runtime: {err}") from None
    for spec, value in zip(signature.outputs, outputs, strict=True):
        array = np.asarray(value)
        if len(spec.shape) != array.ndim or any(
            d is not None and d != n for d, n in zip(spec.shape, array.shape, strict=True)
        ):
            raise InvalidModel(
                f"output {spec.name!r} declared shape {list(spec.shape)} but smoke inference "
                f"returned {list(array.shape)}; fix the graph's output shape"
            )
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise InvalidModel(
                f"output {spec.name!r} has {bad} non-finite value(s) (NaN/inf) on generated "
                "input in the valid range; the model is numerically broken"
            )


def validate_model_file(
    path: Path,
    *,
    production: Signature | None,
    bump: Bump,
    breaking: bool,
    limits: ValidationLimits | None = None,
) -> Signature:
    """Validate the ONNX file at ``path``; returns its signature or raises :class:`InvalidModel`."""
    limits = limits or ValidationLimits()
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InvalidModel(f"the model file is {size} bytes, over the limit of {limits.max_bytes}")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # protobuf DecodeError and friends: the bytes are not an ONNX model
        raise InvalidModel(
            "the uploaded file is not an ONNX model (it does not parse as an ONNX protobuf); "
            "export the model with torch.onnx/skl2onnx/tf2onnx and upload the .onnx file"
        ) from None
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not opsets:
        raise InvalidModel("the model declares no default-domain opset; re-export it")
    opset = max(opsets)
    if not limits.min_opset <= opset <= limits.max_opset:
        raise InvalidModel(
            f"the model uses opset {opset}; Lepton accepts {limits.min_opset}..{limits.max_opset}: "
            "re-export with a supported opset"
        )
    try:
        session = session_for(path)
    except Exception as err:
        raise InvalidModel(f"ONNX Runtime cannot load the model: {err}") from None
    signature = signature_of(session)
    if production is not None:
        problems = check_compatible(signature, production)
        if problems and not (breaking and bump is Bump.MAJOR):
            hint = (
                'declare "breaking": true in lepton.json'
                if bump is Bump.MAJOR
                else 'publish it as a new major version with "breaking": true in lepton.json'
            )
            raise InvalidModel(
                "the signature is incompatible with the production version: "
                + "; ".join(problems)
                + f". Keep the signature, or {hint}"
            )
    smoke_test(session, signature)
    return signature
