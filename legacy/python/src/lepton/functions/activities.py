"""Lifecycle activities: decode the JSON input, call one domain operation, return JSON data.

Every activity is idempotent (safe to retry) and raises on failure — never returns an error
string — so durable retries and failure details work. :data:`ACTIVITIES` maps each durable name to
its function; both adapters register exactly this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from lepton.functions import names
from lepton.functions.services import Services
from lepton.shared import rollout
from lepton.shared.canary import (
    composite_score,
    decide_canary_step,
    json_safe,
    production_reference,
)
from lepton.shared.errors import VersionConflict
from lepton.shared.evaluation import (
    ShardResult,
    evaluate_shard,
    evaluation_composite,
    gate_evaluation,
    merge_shards,
    summarize,
)
from lepton.shared.lifecycle import Stage
from lepton.shared.manifest import Manifest, Task
from lepton.shared.metrics import WindowRollup, empty_rollup
from lepton.shared.policy import Policy, plan_rollout, resolve_policy
from lepton.shared.reports import canary_plot_png, stage_report, window_summary
from lepton.shared.shadow_stats import decide_shadow
from lepton.shared.validation import ValidationLimits, validate_model_file

Json = dict[str, Any]
Activity = Callable[[Services, Json], Any]


def _actor(payload: Json) -> str:
    return str(payload.get("actor") or rollout.ACTOR)


def register(services: Services, payload: Json) -> Json:
    """Register the uploaded file (idempotent per content) and link the orchestration to it."""
    model, version = payload["model"], payload["version"]
    stored = services.store.stat_model(model, version)
    expected = payload.get("sha256")
    if expected and expected != stored.sha256:
        raise VersionConflict(
            f"{model} {version}: the lifecycle was started for sha256 {expected[:12]}… but the "
            f"stored file has {stored.sha256[:12]}…; start it again for the current file"
        )
    record = services.registry.register_version(
        model,
        version,
        sha256=stored.sha256,
        size=stored.size,
        blob_path=stored.path,
        actor=_actor(payload),
    )
    if record.instance_id != payload["instance_id"]:
        record = services.registry.annotate(model, version, instance_id=payload["instance_id"])
    return {"stage": record.stage.value, "sha256": record.sha256}


def validate(services: Services, payload: Json) -> Json:
    """Validate the model file and resolve its policy and rollout plan."""
    model, version = payload["model"], payload["version"]
    record = services.registry.get_version(model, version)
    manifest = services.store.get_manifest(model, version) or Manifest()
    production = next(
        (
            v
            for v in services.registry.list_versions(model)
            if v.stage is Stage.PRODUCTION and v.version != version
        ),
        None,
    )
    bump = record.semver.bump_from(production.semver if production else None)
    path = services.store.download_model(model, version, record.sha256)
    signature = validate_model_file(
        path,
        production=production.signature if production else None,
        bump=bump,
        breaking=manifest.breaking,
        limits=ValidationLimits(max_bytes=services.store.max_model_bytes),
    )
    services.registry.annotate(model, version, signature=signature)
    policy = resolve_policy(manifest.policy, payload.get("overrides") or {})
    return {
        "signature": signature.to_json(),
        "policy": policy.to_json(),
        "plan": plan_rollout(policy, bump).to_json(),
        "production": production.version if production else None,
        "task": manifest.task.value,
        "dataset": manifest.dataset,
    }


def transition(services: Services, payload: Json) -> Json:
    expected = payload.get("expected_from")
    record = rollout.transition(
        services.registry,
        payload["model"],
        payload["version"],
        Stage(payload["to"]),
        expected_from=Stage(expected) if expected else None,
        reason=payload["reason"],
        actor=_actor(payload),
        details=payload.get("details"),
    )
    return {"stage": record.stage.value}


def evaluate(services: Services, payload: Json) -> Json:
    """Evaluate one version on one shard of the model's dataset."""
    model, version = payload["model"], payload["version"]
    record = services.registry.get_version(model, version)
    path = services.store.download_model(model, version, record.sha256)
    x, y = services.store.get_dataset(model, payload["dataset"])
    result = evaluate_shard(
        path,
        x,
        y,
        task=Task(payload["task"]),
        shard=int(payload["shard"]),
        shards=int(payload["shards"]),
    )
    return result.to_json()


def compare(services: Services, payload: Json) -> Json:
    """Merge shard results, gate candidate vs production, store the evaluation report."""
    model, version = payload["model"], payload["version"]
    policy = Policy.from_json(payload["policy"])
    weights = policy.composite_weights.as_tuple()
    merged = {
        role: merge_shards([ShardResult.from_json(s) for s in payload[role]])
        for role in ("candidate", "production")
        if payload.get(role)
    }
    candidate = summarize(merged["candidate"])
    production = summarize(merged["production"]) if "production" in merged else None
    gate = gate_evaluation(candidate, production, policy.evaluation)
    summary = {
        "candidate": candidate,
        "production": production,
        "production_version": payload.get("production_version"),
        # DESIGN §5: every report scores every version it covers.
        "composite": json_safe(
            {role: evaluation_composite(result, weights) for role, result in merged.items()}
        ),
        **gate.to_json(),
    }
    services.registry.annotate(model, version, evaluation=summary)
    services.store.put_report(
        model,
        version,
        "evaluation",
        stage_report(
            model,
            version,
            "evaluation",
            outcome="passed" if gate.passed else "failed",
            reason=gate.reason,
            body=summary,
        ),
    )
    return summary


def check_slot(services: Services, payload: Json) -> Json:
    model, version = payload["model"], payload["version"]
    production = next(
        (
            v.version
            for v in services.registry.list_versions(model)
            if v.stage is Stage.PRODUCTION and v.version != version
        ),
        None,
    )
    return {
        "other": rollout.version_in_rollout(services.registry, model, version),
        "production": production,
    }


def warm_status(services: Services, payload: Json) -> Json:
    status = services.workers.warm_status(
        payload["model"],
        payload["version"],
        datetime.now(UTC),
        timedelta(seconds=float(payload["max_age_s"])),
    )
    return {
        "ready": status.ready,
        "live": list(status.live_replicas),
        "missing": list(status.missing),
    }


def set_routes(services: Services, payload: Json) -> Json:
    routes = rollout.set_traffic(
        services.registry,
        payload["model"],
        candidate=payload.get("candidate"),
        candidate_weight_bp=int(payload.get("candidate_weight_bp", 0)),
        shadow=payload.get("shadow"),
        shadow_fraction_bp=int(payload.get("shadow_fraction_bp", 0)),
        owner=payload["version"],
        reason=payload["reason"],
        actor=_actor(payload),
    )
    return routes.to_json()


def decide_window(services: Services, payload: Json) -> Json:
    """Sum the window's metric rollups and judge candidate vs production (canary or shadow).

    A canary step at 100% may carry ``baseline`` (``start``, ``end``, ``source``,
    ``description``): the time range in which the lifecycle measured production before the
    switch. Production gets no routed traffic at 100%, so its totals over that range are what
    the step is judged against (:func:`~lepton.shared.canary.production_reference`); the result's
    ``baseline`` says which totals were used, and a decision judged on the baseline says so in
    its reason.
    """
    model = payload["model"]
    candidate, production = payload["candidate"], payload.get("production")
    policy = Policy.from_json(payload["policy"])
    weights = policy.composite_weights.as_tuple()
    start, end = int(payload["start"]), int(payload["end"])
    weight_bp = int(payload["weight_bp"])
    totals = services.metrics.totals(model, start, end)
    cand = totals.get(candidate)
    prod = totals.get(production) if production else None
    asked = payload.get("baseline")
    earlier = None
    if asked and production and payload.get("kind") != "shadow":
        earlier = services.metrics.totals(model, int(asked["start"]), int(asked["end"])).get(
            production
        )
    judged = production_reference(prod, earlier, weight_bp=weight_bp)
    if asked and judged is not None and judged is earlier:
        baseline = {**asked, "requests": judged.requests}
    else:
        baseline = {
            "start": start,
            "end": end,
            "source": "same_window",
            "description": _same_window(asked is not None, prod),
            "requests": prod.requests if prod else 0,
        }
    if payload.get("kind") == "shadow":
        decision = decide_shadow(
            cand or empty_rollup(model, candidate, start, 0),
            prod or empty_rollup(model, production or "0.0.0", start, 0),
            policy.thresholds,
            final=bool(payload["final_step"]),
            composite_weights=weights,
        )
    else:
        decision = decide_canary_step(
            cand,
            judged,
            weight_bp=weight_bp,
            thresholds=policy.thresholds,
            final_step=bool(payload["final_step"]),
            composite_weights=weights,
        )
        if baseline["source"] != "same_window":
            decision = replace(
                decision,
                reason=f"{decision.reason}; production baseline: {baseline['description']}",
            )
    # One source for the report's scores: the decision's own, computed with the policy's weights
    # (a decision that stopped before computing them, e.g. no candidate traffic, gets them here).
    scores = decision.checks.get("composite") or {
        role: composite_score(rollup, weights=weights)
        for role, rollup in (("candidate", cand), ("production", judged))
        if rollup is not None
    }
    return {
        "decision": decision.to_json(),
        "candidate": window_summary(cand),
        "production": window_summary(judged),
        "composite": json_safe(scores),
        "baseline": baseline,
    }


def _same_window(baseline_asked: bool, production: WindowRollup | None) -> str:
    if not baseline_asked:
        return "its traffic in the same window"
    if production is not None and production.requests > 0:
        return "its traffic in the same window (none in the baseline range)"
    return "no production traffic in the baseline range; nothing to compare with"


def promote(services: Services, payload: Json) -> Json:
    return rollout.promote(
        services.registry,
        payload["model"],
        payload["version"],
        expected_from=Stage(payload["expected_from"]),
        reason=payload["reason"],
        actor=_actor(payload),
    )


def rollback(services: Services, payload: Json) -> Json:
    record = rollout.rollback(
        services.registry,
        payload["model"],
        payload["version"],
        reason=payload["reason"],
        actor=_actor(payload),
    )
    return {"stage": record.stage.value}


def reinstate(services: Services, payload: Json) -> Json:
    return rollout.reinstate(
        services.registry,
        payload["model"],
        payload["version"],
        payload["previous"],
        reason=payload["reason"],
        actor=_actor(payload),
    )


def report(services: Services, payload: Json) -> Json:
    """Write ``reports/{model}/{version}/{stage}.json`` and, with steps, a PNG plot of them."""
    model, version, stage = payload["model"], payload["version"], payload["stage"]
    steps = payload.get("steps") or []
    body = dict(payload.get("body") or {})
    body["steps"] = steps
    paths = {
        "json": services.store.put_report(
            model,
            version,
            stage,
            stage_report(
                model,
                version,
                stage,
                outcome=payload["outcome"],
                reason=payload["reason"],
                body=body,
            ),
        )
    }
    if steps:
        paths["png"] = services.store.put_report_png(
            model, version, stage, canary_plot_png(model, version, steps, stage=stage)
        )
    return paths


def retire(services: Services, payload: Json) -> Json:
    return {"unloadable": rollout.retire_superseded(services.registry, payload["model"])}


ACTIVITIES: dict[str, Activity] = {
    names.REGISTER_ACTIVITY: register,
    names.VALIDATE_ACTIVITY: validate,
    names.TRANSITION_ACTIVITY: transition,
    names.EVALUATE_SHARD_ACTIVITY: evaluate,
    names.COMPARE_ACTIVITY: compare,
    names.CHECK_SLOT_ACTIVITY: check_slot,
    names.WARM_STATUS_ACTIVITY: warm_status,
    names.SET_ROUTES_ACTIVITY: set_routes,
    names.DECIDE_WINDOW_ACTIVITY: decide_window,
    names.PROMOTE_ACTIVITY: promote,
    names.ROLLBACK_ACTIVITY: rollback,
    names.REINSTATE_ACTIVITY: reinstate,
    names.REPORT_ACTIVITY: report,
    names.RETIRE_ACTIVITY: retire,
}
