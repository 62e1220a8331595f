"""Rollout policy: defaults, layering (manifest then HTTP body), validation, and the SemVer path."""

from __future__ import annotations

from typing import Any

import pytest

from lepton.shared.errors import InvalidPolicy
from lepton.shared.names import Bump
from lepton.shared.policy import (
    DEFAULT_STEPS_BP,
    Policy,
    Strategy,
    plan_rollout,
    resolve_policy,
)


def test_defaults() -> None:
    policy = resolve_policy()
    assert policy.steps_bp == DEFAULT_STEPS_BP == (100, 500, 2500, 5000, 10_000)
    assert policy.composite_weights.as_tuple() == (0.5, 0.2, 0.3)
    assert policy.strategy is Strategy.CANARY
    assert policy.thresholds.min_requests == 200


def test_layers_apply_in_order_and_nested_fields_merge() -> None:
    manifest = {"window_s": 60, "thresholds": {"alpha": 0.01}, "evaluation": {"shards": 8}}
    body = {"window_s": 5, "check_interval_s": 1, "thresholds": {"min_requests": 10}}
    policy = resolve_policy(manifest, body)
    assert policy.window_s == 5.0
    assert (policy.thresholds.alpha, policy.thresholds.min_requests) == (0.01, 10)
    assert policy.evaluation.shards == 8
    assert policy.bake_s == 300.0  # untouched default stays


def test_json_round_trip() -> None:
    policy = resolve_policy({"strategy": "blue_green", "shadow": True, "steps_bp": [1, 10000]})
    assert Policy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"stpes_bp": [1]}, "unknown field(s) ['stpes_bp']"),
        ({"strategy": "yolo"}, "policy.strategy must be one of canary, blue_green"),
        ({"steps_bp": [500, 100, 10000]}, "strictly increasing"),
        ({"steps_bp": [100, 5000]}, "must end at 10000"),
        ({"steps_bp": []}, "non-empty list"),
        ({"window_s": 0}, "policy.window_s must be a positive number of seconds"),
        ({"window_s": "5"}, "policy.window_s must be a finite number"),
        ({"max_extensions": 1.5}, "policy.max_extensions must be a whole number"),
        ({"retry_attempts": 0}, "policy.retry_attempts must be a whole number ≥ 1"),
        ({"shadow": "yes"}, "policy.shadow must be true, false or null"),
        ({"thresholds": {"alpha": 2}}, "thresholds.alpha must be in (0, 1)"),
        ({"thresholds": {"alpah": 0.1}}, "policy.thresholds: unknown field(s) ['alpah']"),
        ({"evaluation": {"shards": 0}}, "policy.evaluation.shards must be a whole number ≥ 1"),
        ({"shadow_fraction_bp": 0}, "policy.shadow_fraction_bp must be within 1..10000"),
        ({"check_interval_s": 10, "window_s": 5}, "must not exceed policy.window_s"),
        ({"composite_weights": {"latency": 0, "resource": 0, "error": 0}}, "must not all be zero"),
    ],
)
def test_invalid_policies_name_the_field(layer: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPolicy) as err:
        resolve_policy(layer)
    assert message in str(err.value)


def test_a_non_object_policy_is_refused() -> None:
    with pytest.raises(InvalidPolicy, match="must be a JSON object"):
        resolve_policy([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bump", "shadow", "approval", "direct"),
    [
        (Bump.INITIAL, False, False, True),
        (Bump.PATCH, False, False, False),
        (Bump.MINOR, True, False, False),
        (Bump.MAJOR, True, True, False),
    ],
)
def test_semver_bump_picks_the_path(bump: Bump, shadow: bool, approval: bool, direct: bool) -> None:
    plan = plan_rollout(Policy(), bump)
    assert (plan.shadow, plan.approval, plan.direct_promotion) == (shadow, approval, direct)
    assert plan.compare_to_production is not direct


def test_policy_overrides_the_bump_default() -> None:
    plan = plan_rollout(resolve_policy({"shadow": False, "approval_required": True}), Bump.MINOR)
    assert (plan.shadow, plan.approval) == (False, True)
    assert plan_rollout(resolve_policy({"strategy": "shadow_only"}), Bump.PATCH).shadow
