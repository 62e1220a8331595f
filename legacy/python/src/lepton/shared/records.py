"""Domain values stored in the registry: versions, routes, audit events (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lepton.shared.lifecycle import Stage
from lepton.shared.names import SemVer

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: name, ONNX element type name, shape (None = symbolic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(data["shape"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_json(t) for t in data.get("inputs", [])),
            tuple(TensorSpec.from_json(t) for t in data.get("outputs", [])),
        )


@dataclass(frozen=True)
class ModelVersion:
    """A registered version of a model and where it stands in its lifecycle."""

    model: str
    version: str
    stage: Stage
    sha256: str
    size: int
    blob_path: str
    created: datetime
    updated: datetime
    signature: Signature | None = None
    evaluation: dict[str, Any] | None = None
    instance_id: str | None = None
    reason: str = ""
    sequence: int = 0  # number of transitions so far; keys this version's audit events
    # The policy overrides its lifecycle was started with (HTTP start body): kept here because
    # the local stack's durable backend forgets orchestration inputs, and the restart
    # reconciler must resume the run with the policy it was given.
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    etag: str = field(default="", compare=False)

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage.value,
            "sha256": self.sha256,
            "size": self.size,
            "blob_path": self.blob_path,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "signature": self.signature.to_json() if self.signature else None,
            "evaluation": self.evaluation,
            "instance_id": self.instance_id,
            "policy_overrides": self.policy_overrides,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Routes:
    """How a model's traffic is split (DESIGN.md §2 `routes`); weights in basis points."""

    model: str
    production: str | None = None
    candidate: str | None = None
    candidate_weight_bp: int = 0
    shadow: str | None = None
    shadow_fraction_bp: int = 0
    sticky_header: str | None = None
    generation: int = 0
    etag: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "production": self.production,
            "candidate": self.candidate,
            "candidate_weight_bp": self.candidate_weight_bp,
            "shadow": self.shadow,
            "shadow_fraction_bp": self.shadow_fraction_bp,
            "sticky_header": self.sticky_header,
            "generation": self.generation,
        }

    def versions_with_traffic(self) -> tuple[str, ...]:
        """Versions that receive (or mirror) requests under these routes, production first."""
        out: list[str] = []
        if self.production:
            out.append(self.production)
        if self.candidate and self.candidate_weight_bp > 0 and self.candidate not in out:
            out.append(self.candidate)
        if self.shadow and self.shadow_fraction_bp > 0 and self.shadow not in out:
            out.append(self.shadow)
        return tuple(out)


@dataclass(frozen=True)
class AuditEvent:
    """One row of the append-only audit log: a stage transition or a traffic change."""

    model: str
    version: str | None
    kind: str  # "transition" | "routes" | "registered"
    actor: str
    from_value: str | None
    to_value: str | None
    reason: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "actor": self.actor,
            "from": self.from_value,
            "to": self.to_value,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "details": self.details,
        }
