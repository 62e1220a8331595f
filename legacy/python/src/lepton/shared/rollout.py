"""Rollout operations that combine several registry writes: stage moves with traffic changes.

Each operation is idempotent so a retried activity converges: transitions pass ``expected_from``
(a repeat of a move already made returns the stored record), routes are rewritten from the current
state, and "the previous production" is found from stages rather than from routes, which a first
attempt may already have changed. Every stage change is an OpenTelemetry span with the model and
version as attributes.
Domain logic, so it lives in ``lepton.shared``: the lifecycle activities in
``lepton.functions.activities`` only decode their payloads and call these.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lepton.shared.errors import Conflict
from lepton.shared.lifecycle import Stage
from lepton.shared.records import ModelVersion, Routes
from lepton.shared.registry import Registry
from lepton.shared.telemetry import tracer

ACTOR = "lifecycle"
_tracer = tracer(__name__)


def transition(
    registry: Registry,
    model: str,
    version: str,
    to: Stage,
    *,
    expected_from: Stage | None,
    reason: str,
    actor: str = ACTOR,
    details: dict[str, Any] | None = None,
) -> ModelVersion:
    """One stage change, traced."""
    with _tracer.start_as_current_span(
        "lepton.stage_transition",
        attributes={
            "lepton.model": model,
            "lepton.version": version,
            "lepton.from_stage": expected_from.value if expected_from else "",
            "lepton.to_stage": to.value,
            "lepton.reason": reason,
        },
    ):
        return registry.transition(
            model,
            version,
            to,
            reason=reason,
            actor=actor,
            expected_from=expected_from,
            details=details,
        )


def set_traffic(
    registry: Registry,
    model: str,
    *,
    candidate: str | None,
    candidate_weight_bp: int,
    shadow: str | None,
    shadow_fraction_bp: int,
    owner: str,
    reason: str,
    actor: str = ACTOR,
) -> Routes:
    """Point the candidate and shadow slots on behalf of version ``owner``.

    Production is only changed by promote/reinstate. A slot held by another version is never
    taken over: two lifecycles that passed the slot check at the same moment would otherwise
    silently steal each other's traffic; the loser gets :class:`Conflict` (and rolls back), and
    the ETag-conditional write makes the check-and-claim atomic.
    """
    current = registry.get_routes(model)
    for slot, held in (("candidate", current.candidate), ("shadow", current.shadow)):
        if held is not None and held != owner:
            raise Conflict(
                f"the {slot} slot of {model!r} is held by {held}; only one version may be in "
                f"shadow or canary at a time — wait for {held} to finish"
            )
    wanted = replace(
        current,
        candidate=candidate,
        candidate_weight_bp=candidate_weight_bp if candidate else 0,
        shadow=shadow,
        shadow_fraction_bp=shadow_fraction_bp if shadow else 0,
    )
    if wanted.to_json() == current.to_json():
        return current  # a retried activity: nothing to change, no new generation
    return registry.set_routes(wanted, actor=actor, reason=reason)


def _production_versions(registry: Registry, model: str, *, besides: str) -> list[str]:
    return [
        v.version
        for v in registry.list_versions(model)
        if v.stage is Stage.PRODUCTION and v.version != besides
    ]


def _serve_only(registry: Registry, model: str, version: str, *, actor: str, reason: str) -> None:
    """Route all traffic to ``version``: no candidate, no shadow; written only if it changes.

    Comparing first keeps a retried activity from appending a second, identical route event.
    """
    current = registry.get_routes(model)
    wanted = replace(
        current,
        production=version,
        candidate=None,
        candidate_weight_bp=0,
        shadow=None,
        shadow_fraction_bp=0,
    )
    if wanted.to_json() != current.to_json():
        registry.set_routes(wanted, actor=actor, reason=reason)


def promote(
    registry: Registry,
    model: str,
    version: str,
    *,
    expected_from: Stage,
    reason: str,
    actor: str = ACTOR,
) -> dict[str, Any]:
    """Make ``version`` production: stage, routes (all traffic), previous → superseded."""
    transition(
        registry,
        model,
        version,
        Stage.PRODUCTION,
        expected_from=expected_from,
        reason=reason,
        actor=actor,
    )
    previous = _production_versions(registry, model, besides=version)
    _serve_only(registry, model, version, actor=actor, reason=f"promote {version}: {reason}")
    for old in previous:
        transition(
            registry,
            model,
            old,
            Stage.SUPERSEDED,
            expected_from=Stage.PRODUCTION,
            reason=f"superseded by {version}",
            actor=actor,
        )
    return {"previous": previous[0] if previous else None}


def rollback(
    registry: Registry,
    model: str,
    version: str,
    *,
    reason: str,
    actor: str = ACTOR,
) -> ModelVersion:
    """Take all traffic off ``version`` (candidate and shadow slots), then mark it rolled back."""
    current = registry.get_routes(model)
    wanted = current
    if current.candidate == version:
        wanted = replace(wanted, candidate=None, candidate_weight_bp=0)
    if current.shadow == version:
        wanted = replace(wanted, shadow=None, shadow_fraction_bp=0)
    if wanted.to_json() != current.to_json():
        registry.set_routes(wanted, actor=actor, reason=f"rollback {version}: {reason}")
    record = registry.get_version(model, version)
    if record.stage is Stage.ROLLED_BACK:
        return record
    return transition(
        registry,
        model,
        version,
        Stage.ROLLED_BACK,
        expected_from=record.stage,
        reason=reason,
        actor=actor,
    )


def reinstate(
    registry: Registry,
    model: str,
    version: str,
    previous: str,
    *,
    reason: str,
    actor: str = ACTOR,
) -> dict[str, Any]:
    """Undo a promotion: ``previous`` back to production (routes too), ``version`` rolled back.

    Order matters: the production route slot only takes a version in stage ``production``, and
    traffic must never point at nothing, so ``previous`` is reinstated before ``version`` leaves.
    """
    transition(
        registry,
        model,
        previous,
        Stage.PRODUCTION,
        expected_from=Stage.SUPERSEDED,
        reason=f"reinstated: rollback of {version}: {reason}",
        actor=actor,
    )
    _serve_only(registry, model, previous, actor=actor, reason=f"rollback {version}: {reason}")
    record = registry.get_version(model, version)
    if record.stage is not Stage.ROLLED_BACK:
        transition(
            registry,
            model,
            version,
            Stage.ROLLED_BACK,
            expected_from=Stage.PRODUCTION,
            reason=reason,
            actor=actor,
        )
    return {"reinstated": previous}


def version_in_rollout(registry: Registry, model: str, version: str) -> str | None:
    """Another version of ``model`` now in shadow or canary (only one may hold those slots)."""
    for record in registry.list_versions(model):
        if record.version != version and record.stage in (Stage.SHADOW, Stage.CANARY):
            return record.version
    return None


def retire_superseded(registry: Registry, model: str) -> list[str]:
    """Superseded versions no route references any more (the workers may unload them)."""
    routes = registry.get_routes(model)
    referenced = set(routes.versions_with_traffic())
    return [
        v.version
        for v in registry.list_versions(model)
        if v.stage is Stage.SUPERSEDED and v.version not in referenced
    ]
