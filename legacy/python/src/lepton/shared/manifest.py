"""The optional ``lepton.json`` manifest uploaded beside a model.

Unknown keys are refused (a typo like ``"polcy"`` would otherwise be silently ignored), and every
error names the field and what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lepton.shared.errors import InvalidManifest
from lepton.shared.names import validate_model_name

MANIFEST_NAME = "lepton.json"
_MAX_MANIFEST_BYTES = 256 * 1024


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class Batching:
    """Per-model dynamic batching settings for the worker."""

    max_batch_size: int = 32
    max_delay_ms: float = 2.0


@dataclass(frozen=True)
class Manifest:
    task: Task = Task.CLASSIFICATION
    dataset: str | None = None
    labels: tuple[str, ...] = ()
    policy: dict[str, Any] = field(default_factory=dict)
    batching: Batching = field(default_factory=Batching)
    breaking: bool = False  # a major version that declares an incompatible signature
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.value,
            "dataset": self.dataset,
            "labels": list(self.labels),
            "policy": self.policy,
            "batching": {
                "max_batch_size": self.batching.max_batch_size,
                "max_delay_ms": self.batching.max_delay_ms,
            },
            "breaking": self.breaking,
            "metadata": self.metadata,
        }


_KEYS = {"task", "dataset", "labels", "policy", "batching", "breaking", "metadata"}


def parse_manifest(raw: bytes | str) -> Manifest:
    """Parse and validate a manifest, raising :class:`InvalidManifest` with the reason."""
    if isinstance(raw, bytes):
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"{MANIFEST_NAME} is larger than {_MAX_MANIFEST_BYTES} bytes")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidManifest(f"{MANIFEST_NAME} is not UTF-8 text") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidManifest(
            f"{MANIFEST_NAME} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidManifest(f"{MANIFEST_NAME} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InvalidManifest(
            f"{MANIFEST_NAME} has unknown keys {unknown}; allowed: {sorted(_KEYS)}"
        )
    return Manifest(
        task=_task(data.get("task", Task.CLASSIFICATION.value)),
        dataset=_dataset(data.get("dataset")),
        labels=_labels(data.get("labels", [])),
        policy=_object(data.get("policy", {}), "policy"),
        batching=_batching(data.get("batching", {})),
        breaking=_bool(data.get("breaking", False), "breaking"),
        metadata=_object(data.get("metadata", {}), "metadata"),
    )


def _task(value: Any) -> Task:
    try:
        return Task(value)
    except ValueError:
        raise InvalidManifest(
            f"{MANIFEST_NAME}: task must be 'classification' or 'regression', got {value!r}"
        ) from None


def _dataset(value: Any) -> str | None:
    if value is None:
        return None
    try:
        # Dataset names become blob names, so they follow the model-name grammar.
        return validate_model_name(value)
    except Exception:
        raise InvalidManifest(
            f"{MANIFEST_NAME}: dataset must be a name of lowercase letters, digits and hyphens "
            f"(the blob datasets/<model>/<dataset>.npz), got {value!r}"
        ) from None


def _labels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidManifest(f"{MANIFEST_NAME}: labels must be a list of strings")
    return tuple(value)


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{MANIFEST_NAME}: {name} must be a JSON object")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidManifest(f"{MANIFEST_NAME}: {name} must be true or false, got {value!r}")
    return value


def _batching(value: Any) -> Batching:
    data = _object(value, "batching")
    unknown = sorted(set(data) - {"max_batch_size", "max_delay_ms"})
    if unknown:
        raise InvalidManifest(f"{MANIFEST_NAME}: batching has unknown keys {unknown}")
    size = data.get("max_batch_size", Batching.max_batch_size)
    delay = data.get("max_delay_ms", Batching.max_delay_ms)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
        raise InvalidManifest(f"{MANIFEST_NAME}: batching.max_batch_size must be 1..4096")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 1000:
        raise InvalidManifest(f"{MANIFEST_NAME}: batching.max_delay_ms must be 0..1000")
    return Batching(max_batch_size=size, max_delay_ms=float(delay))
