"""Turning the CLI's file and text arguments into what the model store and APIs take.

Each parser refuses bad input with a message that names the file or argument and what is allowed,
before anything is uploaded, so a mistake never leaves half a version behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lepton.dev.api_client import ApiError, LeptonApi
from lepton.shared.errors import (
    InvalidDataset,
    InvalidInput,
    InvalidManifest,
    LeptonError,
)
from lepton.shared.manifest import Manifest, parse_manifest

_ROUTE_INT_KEYS = ("candidate_weight_bp", "shadow_fraction_bp")
_ROUTE_TEXT_KEYS = ("production", "candidate", "shadow", "sticky_header")
_BLOCK_BYTES = 4 * 1024 * 1024
_V2_TYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "float": "FP32",
    "double": "FP64",
}


class PublishError(LeptonError):
    code = "publish_error"


def load_manifest(path: Path) -> Manifest:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PublishError(f"cannot read manifest {path}: {err.strerror}") from None
    try:
        return parse_manifest(raw)
    except InvalidManifest as err:
        raise InvalidManifest(f"{path}: {err}") from None


def load_dataset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz or "y" not in npz:
                raise InvalidDataset(
                    f"{path} must hold arrays 'X' and 'y' (np.savez(path, X=..., y=...)), has "
                    f"{sorted(npz.files)}"
                )
            return npz["X"], npz["y"]
    except (OSError, ValueError) as err:
        raise InvalidDataset(f"{path} is not a readable .npz file: {err}") from None


def parse_route_settings(items: list[str]) -> dict[str, Any]:
    """``["candidate=1.1.0", "candidate_weight_bp=500", "shadow=null"]`` → a routes patch."""
    out: dict[str, Any] = {}
    allowed = sorted(_ROUTE_INT_KEYS + _ROUTE_TEXT_KEYS)
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise InvalidInput(f"--set {item!r}: use key=value with key one of {allowed}")
        if key in _ROUTE_INT_KEYS:
            try:
                out[key] = int(value)
            except ValueError:
                raise InvalidInput(
                    f"--set {item!r}: {key} is a whole number of basis points (0..10000)"
                ) from None
        else:
            out[key] = None if value.strip().lower() in ("", "null", "none") else value.strip()
    return out


def v2_request(api: LeptonApi, model: str, rows: Any) -> dict[str, Any]:
    """A v2 infer request for ``rows`` using the model's first input (name, type) if known."""
    array = np.asarray(rows)
    if array.dtype == object or array.size == 0:
        raise InvalidInput("--data must be a non-empty rectangular list of numbers")
    if array.ndim == 1:
        array = array[None, :]
    name, datatype = "input", "FP32"
    try:
        meta = api.worker_model(model)
        first = (meta.get("inputs") or [{}])[0]
        name = str(first.get("name") or name)
        datatype = _V2_TYPES.get(
            str(first.get("datatype", "")).lower(), str(first.get("datatype") or datatype)
        )
    except ApiError as err:
        if err.status_code == 0:
            raise
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.astype(np.float64).ravel().tolist(),
            }
        ]
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
