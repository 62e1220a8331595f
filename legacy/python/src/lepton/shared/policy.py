"""Rollout policy: how a candidate version is evaluated, exposed to traffic and promoted.

Defaults live in code; a model's manifest ``policy`` object overrides them, and the body of an
HTTP start overrides both (:func:`resolve_policy`). Every field is validated and an error names the
field and what is allowed, so a typo never silently falls back to a default. :func:`plan_rollout`
turns the policy and the SemVer bump into the concrete path the lifecycle orchestrator follows
(initial → promote directly, patch → canary, minor → shadow then canary, major → shadow, approval,
canary).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lepton.shared.canary import CanaryThresholds
from lepton.shared.errors import InvalidPolicy
from lepton.shared.names import Bump
from lepton.shared.records import BASIS_POINTS

DEFAULT_STEPS_BP: tuple[int, ...] = (100, 500, 2500, 5000, 10_000)


class Strategy(StrEnum):
    CANARY = "canary"  # stepped weights, judged per window
    BLUE_GREEN = "blue_green"  # warm everywhere, then 100% at once, with a bake window
    AB_TEST = "ab_test"  # fixed split for a duration, a report, no automatic promotion
    SHADOW_ONLY = "shadow_only"  # mirrored traffic only, a report, no automatic promotion


@dataclass(frozen=True)
class CompositeWeights:
    """Weights of the composite score ``P = w1·T + w2·R + w3·E`` (DESIGN.md §5)."""

    latency: float = 0.5
    resource: float = 0.2
    error: float = 0.3

    def to_json(self) -> dict[str, float]:
        return {"latency": self.latency, "resource": self.resource, "error": self.error}

    def as_tuple(self) -> tuple[float, float, float]:
        """``(w1, w2, w3)`` as the statistics functions take them (one order, written once)."""
        return (self.latency, self.resource, self.error)


@dataclass(frozen=True)
class EvaluationGate:
    """Tolerances of the offline evaluation gate (candidate vs production on the dataset)."""

    shards: int = 4
    max_accuracy_drop: float = 0.01  # absolute, classification
    max_f1_drop: float = 0.02  # absolute, macro F1, classification
    max_mse_increase: float = 0.05  # relative, regression
    max_latency_ratio: float = 2.0  # candidate / production fastest-batch latency
    min_latency_delta_ms: float = 1.0  # and slower by at least this much (sub-ms noise is not)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Policy:
    """Every knob of one version's rollout; durations in seconds, weights in basis points."""

    strategy: Strategy = Strategy.CANARY
    steps_bp: tuple[int, ...] = DEFAULT_STEPS_BP
    window_s: float = 300.0
    check_interval_s: float = 60.0  # early look inside a window: a clear regression stops it
    max_extensions: int = 3  # windows added when evidence is insufficient, per step
    thresholds: CanaryThresholds = field(default_factory=CanaryThresholds)
    shadow: bool | None = None  # None: decided by the SemVer bump
    shadow_fraction_bp: int = 1000
    shadow_duration_s: float = 600.0
    approval_required: bool | None = None  # None: decided by the SemVer bump (major)
    approval_timeout_s: float = 86_400.0
    ab_split_bp: int = 5000
    ab_duration_s: float = 3600.0
    bake_s: float = 300.0  # after promotion: previous production kept for instant rollback
    warmup_timeout_s: float = 600.0
    warmup_poll_s: float = 10.0
    heartbeat_max_age_s: float = 30.0
    slot_wait_timeout_s: float = 3600.0  # another version of the model is in shadow/canary
    slot_poll_s: float = 60.0
    retry_interval_s: float = 5.0  # activity retries (storage hiccups)
    retry_attempts: int = 3
    composite_weights: CompositeWeights = field(default_factory=CompositeWeights)
    evaluation: EvaluationGate = field(default_factory=EvaluationGate)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        return resolve_policy(data)


@dataclass(frozen=True)
class RolloutPlan:
    """The path a version takes, derived from the policy and the SemVer bump."""

    bump: Bump
    strategy: Strategy
    compare_to_production: bool
    shadow: bool
    approval: bool
    direct_promotion: bool  # initial version: nothing to canary against

    def to_json(self) -> dict[str, Any]:
        return {
            "bump": self.bump.value,
            "strategy": self.strategy.value,
            "compare_to_production": self.compare_to_production,
            "shadow": self.shadow,
            "approval": self.approval,
            "direct_promotion": self.direct_promotion,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutPlan:
        return cls(
            bump=Bump(data["bump"]),
            strategy=Strategy(data["strategy"]),
            compare_to_production=bool(data["compare_to_production"]),
            shadow=bool(data["shadow"]),
            approval=bool(data["approval"]),
            direct_promotion=bool(data["direct_promotion"]),
        )


def plan_rollout(policy: Policy, bump: Bump) -> RolloutPlan:
    """Initial → promote; patch → canary; minor → shadow, canary; major → + approval."""
    if bump is Bump.INITIAL:
        return RolloutPlan(bump, policy.strategy, False, False, False, True)
    shadow = policy.shadow if policy.shadow is not None else bump in (Bump.MINOR, Bump.MAJOR)
    if policy.strategy is Strategy.SHADOW_ONLY:
        shadow = True
    approval = (
        policy.approval_required if policy.approval_required is not None else bump is Bump.MAJOR
    )
    return RolloutPlan(bump, policy.strategy, True, shadow, approval, False)


def resolve_policy(*layers: Mapping[str, Any] | None) -> Policy:
    """Defaults, then each layer in order (manifest ``policy``, then the HTTP start body)."""
    policy = Policy()
    for depth, layer in enumerate(layers):
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise InvalidPolicy(f"policy must be a JSON object, got {type(layer).__name__}")
        policy = _apply(policy, layer, source="policy" if depth == 0 else "policy override")
    _check_consistency(policy)
    return policy


_FIELDS = {f.name: f for f in dataclasses.fields(Policy)}


def _apply(policy: Policy, layer: Mapping[str, Any], *, source: str) -> Policy:
    unknown = sorted(set(layer) - set(_FIELDS))
    if unknown:
        raise InvalidPolicy(f"{source}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    changes: dict[str, Any] = {}
    for name, raw in layer.items():
        current = getattr(policy, name)
        changes[name] = _coerce(name, raw, current)
    return dataclasses.replace(policy, **changes)


def _coerce(name: str, raw: Any, current: Any) -> Any:
    if name == "strategy":
        try:
            return Strategy(raw)
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            raise InvalidPolicy(f"policy.strategy must be one of {allowed}, got {raw!r}") from None
    if name == "steps_bp":
        return _steps(raw)
    if name in ("shadow", "approval_required"):
        if raw is not None and not isinstance(raw, bool):
            raise InvalidPolicy(f"policy.{name} must be true, false or null, got {raw!r}")
        return raw
    if name in ("thresholds", "composite_weights", "evaluation"):
        return _nested(name, raw, current)
    if isinstance(current, bool):
        raise InvalidPolicy(f"policy.{name} is not a boolean field")  # no bool fields left here
    if isinstance(current, int):
        return _int(f"policy.{name}", raw, low=0 if name != "retry_attempts" else 1)
    return _seconds(f"policy.{name}", raw)


def _nested(name: str, raw: Any, current: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise InvalidPolicy(f"policy.{name} must be a JSON object, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(current)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise InvalidPolicy(f"policy.{name}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(current, key)
        label = f"policy.{name}.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise InvalidPolicy(f"{label} must be true or false, got {value!r}")
            changes[key] = value
        elif isinstance(default, int):
            changes[key] = _int(label, value, low=1 if key == "shards" else 0)
        else:
            changes[key] = _number(label, value)
    return dataclasses.replace(current, **changes)


def _number(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPolicy(f"{label} must be a finite number, got {value!r}")
    if value < 0:
        raise InvalidPolicy(f"{label} must not be negative, got {value!r}")
    return float(value)


def _seconds(label: str, value: Any) -> float:
    seconds = _number(label, value)
    if seconds <= 0:
        raise InvalidPolicy(f"{label} must be a positive number of seconds, got {value!r}")
    return seconds


def _int(label: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidPolicy(f"{label} must be a whole number ≥ {low}, got {value!r}")
    return value


def _steps(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidPolicy(
            f"policy.steps_bp must be a non-empty list of basis points, got {raw!r}"
        )
    steps = tuple(_int("policy.steps_bp[]", s, low=1) for s in raw)
    if any(s > BASIS_POINTS for s in steps):
        raise InvalidPolicy(f"policy.steps_bp values must be within 1..{BASIS_POINTS}, got {raw!r}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        # Weights only grow so a sticky caller moved to the candidate stays there (DESIGN §4).
        raise InvalidPolicy(f"policy.steps_bp must be strictly increasing, got {list(steps)}")
    if steps[-1] != BASIS_POINTS:
        raise InvalidPolicy(
            f"policy.steps_bp must end at {BASIS_POINTS} (100%) so a passing canary can be "
            f"promoted, got {list(steps)}"
        )
    return steps


def _check_consistency(policy: Policy) -> None:
    for name in ("shadow_fraction_bp", "ab_split_bp"):
        value = getattr(policy, name)
        if not 1 <= value <= BASIS_POINTS:
            raise InvalidPolicy(f"policy.{name} must be within 1..{BASIS_POINTS}, got {value}")
    if policy.check_interval_s > policy.window_s:
        raise InvalidPolicy(
            f"policy.check_interval_s ({policy.check_interval_s}) must not exceed "
            f"policy.window_s ({policy.window_s})"
        )
    w = policy.composite_weights
    if w.latency + w.resource + w.error <= 0:
        raise InvalidPolicy("policy.composite_weights must not all be zero")
