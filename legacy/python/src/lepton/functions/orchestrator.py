"""The version lifecycle orchestration, written once against :class:`DurableContext`.

validate → evaluate (fan-out over shards, fan-in merge and gate) → [shadow] → [approval] →
canary steps (or blue/green, or an A/B split) → promote → bake → retire; any failure ends in
``rejected`` or ``rolled_back`` with the reason recorded. Every wait is a durable timer raced
against the single operator event, so ``approve``/``promote``/``rollback``/``abort`` work at any
time. The body is deterministic: time comes from the context, all I/O happens in activities.

Which failure stage: a version stopped before it ever took traffic (an operator ``rollback`` or
``abort``, or an approval that never came, while it waits in ``evaluating`` — a version without a
shadow phase awaits its approval there) ends ``rejected``; from ``shadow`` or ``canary`` it ends
``rolled_back`` (DESIGN §3). There is nothing to roll back before traffic, so the state machine
keeps its ``evaluating → rejected`` edge rather than gaining an ``evaluating → rolled_back`` one.

A step at 100% (the last canary step, the blue/green bake) leaves production without routed
traffic to compare with, so it is judged against a *baseline*: production's traffic during the
earlier steps of this rollout, or, with no earlier step, in the window just before the switch.
The orchestrator passes only that time range (plain integers from its own clock); the activity
reads the totals, and each step in the report says which baseline it was judged on.

Reports: ``shadow.json`` and ``canary.json`` each hold the steps of their own phase.

Two versions of one model never hold the shadow/canary slots together: the routes table has one
candidate and one shadow slot and statistics compare one candidate with production. A second
version that passes evaluation therefore *waits* in ``evaluating`` (custom status ``waiting for
<other> to finish``), polling with durable timers for at most ``slot_wait_timeout_s``, and is
rejected with that reason if the slot never frees. Waiting rather than refusing keeps an upload
burst from losing work, and the bound keeps a stuck rollout from holding the next one forever.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lepton.functions import names
from lepton.functions.durable_context import DurableContext, DurableTask, Retry
from lepton.shared.errors import InvalidPolicy
from lepton.shared.lifecycle import Stage
from lepton.shared.names import Bump
from lepton.shared.policy import Policy, RolloutPlan, Strategy, resolve_policy
from lepton.shared.records import BASIS_POINTS

Json = dict[str, Any]
Steps = Generator[DurableTask, Any, Any]

_BOOT_RETRY = Retry(first_interval_s=Policy.retry_interval_s, attempts=Policy.retry_attempts)
# Verdict strings of lepton.shared.canary.Verdict, kept as plain data in the orchestration.
_ROLLBACK, _PROMOTE, _CONTINUE, _INVALID = "rollback", "promote", "continue", "invalid"
# A version stopped in these stages never took traffic: it ends rejected, not rolled back.
_BEFORE_TRAFFIC = frozenset({Stage.REGISTERED, Stage.VALIDATING, Stage.EVALUATING})


@dataclass(frozen=True)
class LifecycleInput:
    model: str
    version: str
    sha256: str
    overrides: Json
    actor: str = "lifecycle"

    def to_json(self) -> Json:
        return {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "overrides": self.overrides,
            "actor": self.actor,
        }

    @classmethod
    def from_json(cls, data: Json) -> LifecycleInput:
        return cls(
            str(data["model"]),
            str(data["version"]),
            str(data.get("sha256", "")),
            dict(data.get("overrides") or {}),
            str(data.get("actor") or "lifecycle"),
        )


class _FinishedError(Exception):
    """Ends the orchestration early with a final outcome (raised inside the body only)."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class _Lifecycle:
    def __init__(self, ctx: DurableContext, request: LifecycleInput) -> None:
        self.ctx = ctx
        self.req = request
        self.retry = _boot_retry(request.overrides)
        self.operator: DurableTask | None = None
        self.policy = Policy()
        self.production: str | None = None
        self.stage = Stage.REGISTERED
        # The phase with traffic now running ("shadow" or "canary"): names its report.
        self.phase: str | None = None
        self.steps: list[Json] = []
        self.status: Json = {
            "model": request.model,
            "version": request.version,
            "stage": self.stage.value,
            "step": 0,
            "steps": 0,
            "weight_bp": 0,
            "decision": None,
            "reason": "",
            "waiting_for": None,
        }

    # -- plumbing -----------------------------------------------------------------------------

    def publish(self, **changes: Any) -> None:
        self.status.update(changes)
        self.status["stage"] = self.stage.value
        self.ctx.set_custom_status(dict(self.status))

    def call(self, name: str, payload: Json) -> Steps:
        result = yield self.ctx.call_activity(
            name, {"actor": self.req.actor, **payload}, self.retry
        )
        return result

    def base(self) -> Json:
        return {"model": self.req.model, "version": self.req.version}

    def move(self, to: Stage, reason: str, actor: str | None = None, **details: Any) -> Steps:
        yield from self.call(
            names.TRANSITION_ACTIVITY,
            {
                **self.base(),
                "to": to.value,
                "expected_from": self.stage.value,
                "reason": reason,
                "actor": actor or self.req.actor,
                "details": details,
            },
        )
        self.stage = to
        self.publish(reason=reason)

    def wait(self, seconds: float, *, waiting_for: str | None = None) -> Steps:
        """Sleep ``seconds`` durably; returns an operator command if one arrives first."""
        fire_at = self.ctx.current_utc_datetime + timedelta(seconds=seconds)
        timer = self.ctx.create_timer(fire_at)
        if self.operator is None:
            # Created once and reused until it fires: a second waiter could swallow the event.
            self.operator = self.ctx.wait_for_external_event(names.OPERATOR_EVENT)
        if waiting_for is not None:
            self.publish(waiting_for=waiting_for)
        winner = yield self.ctx.task_any([timer, self.operator])
        if winner is self.operator:
            command = _command(self.ctx.result_of(self.operator))
            self.operator = None
            self.publish(last_command=command)
            return command
        return None

    def unix_now(self) -> int:
        return int(self.ctx.current_utc_datetime.timestamp())

    # -- outcomes -----------------------------------------------------------------------------

    def reject(self, reason: str, actor: str | None = None) -> Steps:
        yield from self.move(Stage.REJECTED, reason, actor)
        raise _FinishedError("rejected", reason)

    def roll_back(self, reason: str, actor: str | None = None) -> Steps:
        """Take the candidate off traffic and end ``rolled_back``; ``rejected`` before traffic."""
        if self.stage in _BEFORE_TRAFFIC:
            yield from self.reject(reason, actor)
        yield from self.call(
            names.ROLLBACK_ACTIVITY,
            {
                **self.base(),
                "reason": reason,
                "actor": actor or self.req.actor,
            },
        )
        self.stage = Stage.ROLLED_BACK
        self.publish(reason=reason, weight_bp=0)
        yield from self.report("rolled_back", reason)
        raise _FinishedError("rolled_back", reason)

    def report(self, outcome: str, reason: str) -> Steps:
        """Write the running phase's report (``shadow`` or ``canary``) with its own steps."""
        if self.phase is None:
            return  # no traffic phase yet: the evaluation report and the audit trail say it all
        steps = [s for s in self.steps if s["kind"] == self.phase]
        yield from self.call(
            names.REPORT_ACTIVITY,
            {
                **self.base(),
                "stage": self.phase,
                "outcome": outcome,
                "reason": reason,
                "steps": steps,
                "body": {
                    "policy": self.policy.to_json(),
                    "production": self.production,
                    # DESIGN §5: the composite score of both versions, from the deciding step.
                    "composite": steps[-1]["composite"] if steps else {},
                },
            },
        )

    def handle_command(self, command: Json, *, accept_approve: bool = False) -> Steps:
        """Act on an operator command; returns True when the caller should proceed now."""
        action, actor = command["action"], command["actor"]
        reason = command["reason"] or f"{action} requested by {actor}"
        if action in ("rollback", "abort"):
            label = "aborted" if action == "abort" else "rolled back"
            yield from self.roll_back(f"{label} by operator {actor}: {reason}", actor)
        if action == "promote":
            yield from self.promote(f"promoted by operator {actor}: {reason}", actor)
        return action == "approve" and accept_approve

    # -- stages -------------------------------------------------------------------------------

    def run(self) -> Steps:
        self.publish()
        registered = yield from self.call(
            names.REGISTER_ACTIVITY,
            {
                **self.base(),
                "sha256": self.req.sha256,
                "instance_id": self.ctx.instance_id,
            },
        )
        self.stage = Stage(registered["stage"])
        if self.stage not in (
            Stage.REGISTERED,
            Stage.VALIDATING,
            Stage.EVALUATING,
            Stage.SHADOW,
            Stage.CANARY,
        ):
            raise _FinishedError(self.stage.value, f"nothing to do: already {self.stage.value}")
        if self.stage is Stage.REGISTERED:
            yield from self.move(Stage.VALIDATING, "validation started")
        try:
            checked = yield from self.call(
                names.VALIDATE_ACTIVITY,
                {
                    **self.base(),
                    "overrides": self.req.overrides,
                },
            )
        except Exception as err:
            reason = f"validation failed: {self.ctx.failure_message(err)}"
            if self.stage is Stage.VALIDATING:
                yield from self.reject(reason)
            raise _FinishedError("failed", reason) from None
        self.policy = Policy.from_json(checked["policy"])
        self.retry = Retry(self.policy.retry_interval_s, self.policy.retry_attempts)
        plan = RolloutPlan.from_json(checked["plan"])
        self.production = checked["production"]
        self.publish(plan=plan.to_json())
        if self.stage is Stage.VALIDATING:
            yield from self.move(Stage.EVALUATING, "validation passed")
        if self.stage is Stage.EVALUATING:
            yield from self.evaluate(checked, plan)
            if plan.direct_promotion:
                yield from self.promote("first version of the model: promoted after evaluation")
            if plan.approval and not plan.shadow:
                # Without a shadow phase the approval is awaited here, before the slot is
                # claimed: a wait of hours must not hold the model's only rollout slot.
                yield from self.await_approval(plan)
            yield from self.wait_for_slot()
        if plan.shadow and self.stage is Stage.EVALUATING:
            yield from self.move(Stage.SHADOW, "shadow started")
        if self.stage is Stage.SHADOW:
            yield from self.shadow(plan)
            if plan.approval:
                yield from self.await_approval(plan)
        yield from self.canary(plan)

    def evaluate(self, checked: Json, plan: RolloutPlan) -> Steps:
        dataset = checked["dataset"]
        if dataset is None:
            self.publish(reason="no dataset in lepton.json: offline evaluation skipped")
            return
        shards = self.policy.evaluation.shards
        roles = [("candidate", self.req.version)]
        if plan.compare_to_production and self.production:
            roles.append(("production", self.production))
        tasks = [
            self.ctx.call_activity(
                names.EVALUATE_SHARD_ACTIVITY,
                {
                    "model": self.req.model,
                    "version": version,
                    "dataset": dataset,
                    "task": checked["task"],
                    "shard": shard,
                    "shards": shards,
                },
                self.retry,
            )
            for _, version in roles
            for shard in range(shards)
        ]
        self.publish(reason=f"evaluating on {shards} shard(s)")
        try:
            results = yield self.ctx.task_all(tasks)
        except Exception as err:
            yield from self.reject(f"evaluation failed: {self.ctx.failure_message(err)}")
        summary = yield from self.call(
            names.COMPARE_ACTIVITY,
            {
                **self.base(),
                "policy": self.policy.to_json(),
                "candidate": results[:shards],
                "production": results[shards:],
                "production_version": self.production if len(roles) > 1 else None,
            },
        )
        if not summary["passed"]:
            yield from self.reject(f"evaluation gate failed: {summary['reason']}")
        self.publish(reason=f"evaluation passed (accuracy {summary['candidate'].get('accuracy')})")

    def wait_for_slot(self) -> Steps:
        waited = 0.0
        while True:
            slot = yield from self.call(names.CHECK_SLOT_ACTIVITY, self.base())
            self.production = slot["production"]
            other = slot["other"]
            if other is None:
                self.publish(waiting_for=None)
                return
            if waited >= self.policy.slot_wait_timeout_s:
                yield from self.reject(
                    f"waited {waited:g}s for {other} to finish its rollout; only one version of "
                    "a model may be in shadow or canary at a time. Start the lifecycle again "
                    "once it has finished"
                )
            command = yield from self.wait(
                self.policy.slot_poll_s, waiting_for=f"waiting for {other} to finish"
            )
            waited += self.policy.slot_poll_s
            if command is not None and command["action"] in ("rollback", "abort"):
                actor = command["actor"]
                yield from self.reject(
                    f"aborted by operator {actor} while waiting for {other} to finish: "
                    + (command["reason"] or "no reason given"),
                    actor,
                )

    def warm_up(self) -> Steps:
        """Poll the workers table until every live replica has the candidate ready."""
        waited = 0.0
        while True:
            warm = yield from self.call(
                names.WARM_STATUS_ACTIVITY,
                {
                    **self.base(),
                    "max_age_s": self.policy.heartbeat_max_age_s,
                },
            )
            if warm["ready"]:
                self.publish(waiting_for=None, replicas=warm["live"])
                return
            if waited >= self.policy.warmup_timeout_s:
                missing = ", ".join(warm["missing"]) or "none live"
                yield from self.roll_back(
                    f"candidate not warm after {waited:g}s on replica(s): {missing}"
                )
            command = yield from self.wait(
                self.policy.warmup_poll_s,
                waiting_for=f"warm-up on {', '.join(warm['missing']) or 'any live replica'}",
            )
            waited += self.policy.warmup_poll_s
            if command is not None:
                yield from self.handle_command(command)

    def shadow(self, plan: RolloutPlan) -> Steps:
        self.phase = "shadow"
        fraction = self.policy.shadow_fraction_bp
        # Named in the routes at 0% first: replicas load it, and it gets no copies until warm.
        yield from self.traffic(shadow=self.req.version, shadow_fraction_bp=0, why="pre-warm")
        yield from self.warm_up()
        yield from self.traffic(
            shadow=self.req.version, shadow_fraction_bp=fraction, why="shadow traffic"
        )
        self.publish(weight_bp=0, shadow_fraction_bp=fraction)
        yield from self.step("shadow", 0, self.policy.shadow_duration_s, True)
        yield from self.report("passed", "shadow passed")
        if plan.strategy is Strategy.SHADOW_ONLY:
            yield from self.await_operator("shadow_only run finished")

    def await_approval(self, plan: RolloutPlan) -> Steps:
        """Wait for ``approve``; rollback, abort or the timeout end the run (see roll_back)."""
        why = (
            "major version"
            if plan.bump is Bump.MAJOR and self.policy.approval_required is None
            else "policy approval_required"
        )
        timeout = self.policy.approval_timeout_s
        self.publish(waiting_for="approval (send approve, promote, rollback or abort)")
        # One deadline for the whole wait: a stray command does not restart the clock.
        deadline = self.ctx.current_utc_datetime + timedelta(seconds=timeout)
        while True:
            remaining = max((deadline - self.ctx.current_utc_datetime).total_seconds(), 0.0)
            command = yield from self.wait(remaining)
            if command is None:
                yield from self.roll_back(f"no approval within {timeout:g}s ({why})")
            if (yield from self.handle_command(command, accept_approve=True)):
                break
            # Anything else (e.g. a duplicate or unknown command) still needs an approve.
        self.publish(waiting_for=None, reason=f"approved by {command['actor']}")

    def await_operator(self, why: str) -> Steps:
        """No automatic promotion (ab_test, shadow_only): promote or roll back on command."""
        timeout = self.policy.approval_timeout_s
        self.publish(waiting_for=f"{why}: send promote or rollback")
        deadline = self.ctx.current_utc_datetime + timedelta(seconds=timeout)
        while True:
            remaining = max((deadline - self.ctx.current_utc_datetime).total_seconds(), 0.0)
            command = yield from self.wait(remaining)
            if command is None:
                yield from self.roll_back(f"{why}; no operator decision within {timeout:g}s")
            # promote and rollback/abort end the run; anything else keeps waiting.
            yield from self.handle_command(command)

    def decide(
        self, kind: str, start: int, weight_bp: int, final: bool, baseline: Json | None
    ) -> Steps:
        result = yield from self.call(
            names.DECIDE_WINDOW_ACTIVITY,
            {
                "model": self.req.model,
                "candidate": self.req.version,
                "production": self.production,
                "start": start,
                "end": self.unix_now() + 1,
                "weight_bp": weight_bp,
                "final_step": final,
                "kind": kind,
                "policy": self.policy.to_json(),
                "baseline": baseline,
            },
        )
        decision = result["decision"]
        self.steps.append(
            {
                "step": self.status["step"],
                "weight_bp": weight_bp,
                "kind": kind,
                "verdict": decision["verdict"],
                "reason": decision["reason"],
                "candidate": result["candidate"],
                "production": result["production"],
                "composite": result.get("composite", {}),
                "baseline": result.get("baseline"),
            }
        )
        self.publish(decision=decision["verdict"], reason=decision["reason"])
        return result

    def traffic(self, *, why: str, **slots: Any) -> Steps:
        """Set this version's candidate/shadow slots; failing to, it rolls back (never hangs)."""
        try:
            yield from self.call(
                names.SET_ROUTES_ACTIVITY,
                {**self.base(), "candidate": None, "shadow": None, "reason": why, **slots},
            )
        except Exception as err:
            yield from self.roll_back(f"could not route traffic: {self.ctx.failure_message(err)}")

    def canary(self, plan: RolloutPlan) -> Steps:
        if self.stage is not Stage.CANARY:
            yield from self.move(Stage.CANARY, f"{plan.strategy.value} started")
        self.phase = "canary"
        # From here until the first step production serves all traffic: a baseline for 100%.
        warming_from = self.unix_now()
        # Named in the routes at 0% first: replicas load it, and it gets traffic only when warm.
        yield from self.traffic(candidate=self.req.version, candidate_weight_bp=0, why="pre-warm")
        yield from self.warm_up()
        strategy = plan.strategy
        weights: tuple[int, ...]
        if strategy is Strategy.BLUE_GREEN:
            weights, window = (BASIS_POINTS,), self.policy.bake_s
        elif strategy is Strategy.AB_TEST:
            weights, window = (self.policy.ab_split_bp,), self.policy.ab_duration_s
        else:
            weights, window = self.policy.steps_bp, self.policy.window_s
        first_start: int | None = None
        for index, weight in enumerate(weights):
            final = index == len(weights) - 1
            yield from self.traffic(
                candidate=self.req.version,
                candidate_weight_bp=weight,
                why=f"{strategy.value} step {index + 1}/{len(weights)}",
            )
            self.publish(step=index + 1, steps=len(weights), weight_bp=weight)
            # The step's evidence starts at the next whole second (see step()).
            begins = self.unix_now() + 1
            first_start = begins if first_start is None else first_start
            baseline = None
            if weight == BASIS_POINTS:
                baseline = _baseline(first_start, begins, weights[:index], window, warming_from)
            yield from self.step(
                "canary", weight, window, final and strategy is not Strategy.AB_TEST, baseline
            )
        if strategy is Strategy.AB_TEST:
            yield from self.report("passed", "A/B split finished")
            yield from self.await_operator("A/B test finished")
        yield from self.promote(f"{strategy.value} passed all {len(weights)} step(s)")

    def step(
        self, kind: str, weight: int, window: float, final: bool, baseline: Json | None = None
    ) -> Steps:
        """One weight: windows of evidence until a verdict, extended when evidence is short.

        ``baseline``: the time range of production's traffic a step at 100% is judged against.
        """
        label = f"canary at {weight / 100:g}%" if kind == "canary" else kind
        extensions = 0
        # Evidence accumulates over the whole step (the sequential test stays valid on growing
        # totals), so an extension adds samples; only a window judged invalid (the routing did
        # not do what it was told) is discarded and counting starts again. Only rollup windows
        # that began after the weight changed count (start = next whole second): the window in
        # progress at the change mixes traffic routed under the previous weight, which the
        # sample-ratio check would rightly call a mismatch.
        start = self.unix_now() + 1
        while True:
            end_at = self.ctx.current_utc_datetime + timedelta(seconds=window)
            verdict, reason = _CONTINUE, ""
            while True:
                remaining = max((end_at - self.ctx.current_utc_datetime).total_seconds(), 0.0)
                command = yield from self.wait(min(self.policy.check_interval_s, remaining))
                if command is not None:
                    yield from self.handle_command(command)
                    continue
                closing = self.ctx.current_utc_datetime >= end_at
                result = yield from self.decide(kind, start, weight, final and closing, baseline)
                verdict, reason = result["decision"]["verdict"], result["decision"]["reason"]
                if verdict == _ROLLBACK:
                    # The sequential test is always valid, so an early look may stop the step.
                    yield from self.roll_back(f"{label}: {reason}")
                if closing:
                    break
            if verdict in (_CONTINUE, _PROMOTE):
                return
            if verdict == _INVALID:
                start = self.unix_now() + 1
            extensions += 1
            if extensions > self.policy.max_extensions:
                yield from self.roll_back(
                    f"{label}: {verdict} after {self.policy.max_extensions} extension(s): {reason}"
                )
            self.publish(
                reason=f"{verdict}: extending the window ({extensions}/"
                f"{self.policy.max_extensions}): {reason}"
            )

    def promote(self, reason: str, actor: str | None = None) -> Steps:
        expected = self.stage
        promoted = yield from self.call(
            names.PROMOTE_ACTIVITY,
            {
                **self.base(),
                "expected_from": expected.value,
                "reason": reason,
                "actor": actor or self.req.actor,
            },
        )
        self.stage = Stage.PRODUCTION
        self.publish(weight_bp=BASIS_POINTS, reason=reason, waiting_for=None)
        previous = promoted.get("previous")
        yield from self.report("promoted", reason)
        if previous is not None:
            # Bake: the previous version stays loaded and an operator rollback reinstates it.
            command = yield from self.wait(
                self.policy.bake_s, waiting_for=f"bake: rollback reinstates {previous}"
            )
            if command is not None and command["action"] in ("rollback", "abort"):
                why = f"rolled back after promotion by operator {command['actor']}: " + (
                    command["reason"] or "no reason given"
                )
                yield from self.call(
                    names.REINSTATE_ACTIVITY,
                    {
                        **self.base(),
                        "previous": previous,
                        "reason": why,
                        "actor": command["actor"],
                    },
                )
                self.stage = Stage.ROLLED_BACK
                self.publish(reason=why, weight_bp=0, waiting_for=None)
                yield from self.report("rolled_back", why)  # the report said "promoted"
                raise _FinishedError("rolled_back", why)
            self.publish(waiting_for=None)
            yield from self.call(names.RETIRE_ACTIVITY, {"model": self.req.model})
        raise _FinishedError("production", reason)


def _baseline(
    first_start: int,
    begins: int,
    earlier_bp: tuple[int, ...],
    window: float,
    warming_from: int,
) -> Json:
    """Where production is measured for a step at 100%, which gives it no routed traffic.

    After earlier steps: all of production's traffic since the first step began (the most
    evidence this rollout has, from the same version; each of those steps already passed with
    at least ``min_requests`` production requests). With none (a blue/green bake, a one-step
    canary): production's traffic before the switch — the whole warm-up at 0% and at least the
    ``window`` seconds before the switch, plus the second in which it happened. That is
    production alone at full load, like the step to come, and spanning the warm-up means the
    range holds rollups whenever production serves at all (replicas write them while they
    report the candidate warm). Integers from the orchestration clock only, so a replay passes
    the same range.
    """
    if earlier_bp:
        weights = ", ".join(f"{w / 100:g}%" for w in earlier_bp)
        steps = "step 1" if len(earlier_bp) == 1 else f"steps 1-{len(earlier_bp)}"
        return {
            "start": first_start,
            "end": begins,
            "source": "earlier_steps",
            "description": f"its own traffic during {steps} ({weights}) of this rollout",
        }
    start = min(begins - 1 - max(math.ceil(window), 1), warming_from)
    return {
        "start": start,
        "end": begins,
        "source": "before_switch",
        "description": f"its traffic in the {begins - start}s before the switch to 100%",
    }


def _boot_retry(overrides: Json) -> Retry:
    """Retry settings before the manifest is read: the run's overrides, else the defaults."""
    try:
        policy = resolve_policy(overrides)
    except InvalidPolicy:
        return _BOOT_RETRY  # the validate activity reports the problem with its reason
    return Retry(policy.retry_interval_s, policy.retry_attempts)


def _command(raw: Any) -> Json:
    data = raw if isinstance(raw, dict) else {"action": str(raw)}
    action = str(data.get("action", ""))
    if action not in names.OPERATOR_ACTIONS:
        action = "ignored"
    return {
        "action": action,
        "actor": str(data.get("actor") or "operator"),
        "reason": str(data.get("reason") or ""),
    }


def lifecycle(ctx: DurableContext) -> Generator[DurableTask, Any, Json]:
    """The orchestrator body both adapters run; returns the final outcome and reason."""
    request = LifecycleInput.from_json(ctx.get_input())
    run = _Lifecycle(ctx, request)
    try:
        yield from run.run()
    except _FinishedError as done:
        run.publish(waiting_for=None, outcome=done.outcome, reason=done.reason)
        return {"outcome": done.outcome, "stage": run.stage.value, "reason": done.reason}
    return {"outcome": run.stage.value, "stage": run.stage.value, "reason": run.status["reason"]}
