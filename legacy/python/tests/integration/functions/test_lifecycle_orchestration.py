"""The real lifecycle orchestrator on durabletask's in-memory backend, activities on Azurite,
models in ONNX Runtime, and a simulated worker replica writing real heartbeats and rollups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from lepton.dev import sample_models
from lepton.functions.client import start_lifecycle
from lepton.functions.local import resume_active_lifecycles
from lepton.functions.names import OPERATOR_EVENT
from lepton.functions.orchestrator import LifecycleInput
from lepton.shared.lifecycle import Stage
from tests.integration.functions.conftest import FAST, MODEL, Host, upload
from tests.integration.functions.fakeworker import Behaviour, FakeWorker

pytestmark = pytest.mark.azurite

Data = tuple[sample_models.Dataset, sample_models.Dataset]


@pytest.fixture
def data(host: Host, digits_data: Data) -> Data:
    _, test = digits_data
    host.services.store.put_dataset(MODEL, "digits", test.x, test.y)
    return digits_data


@pytest.fixture
def worker(host: Host) -> Iterator[FakeWorker]:
    sim = FakeWorker(host.services, MODEL).start()
    yield sim
    sim.stop()


def start(host: Host, version: str, sha256: str, policy: dict[str, Any] | None = None) -> str:
    request = LifecycleInput(MODEL, version, sha256, policy if policy is not None else FAST)
    return asyncio.run(start_lifecycle(host.client, request)).instance_id


def run(
    host: Host,
    version: str,
    model_bytes: bytes,
    policy: dict[str, Any] | None = None,
    **upload_kw: Any,
) -> dict[str, Any]:
    sha = upload(host.services, version, model_bytes, **upload_kw)
    output: dict[str, Any] = host.wait_done(start(host, version, sha, policy))
    return output


def seed_production(host: Host, data: Data) -> None:
    out = run(host, "1.0.0", sample_models.better_digits(data[0]))
    assert out["stage"] == "production", out


def transitions(host: Host, version: str) -> list[tuple[str | None, str | None]]:
    return [
        (e.from_value, e.to_value)
        for e in host.services.registry.history(MODEL, version)
        if e.kind in ("transition", "registered")
    ]


def route_events_naming(host: Host, version: str) -> list[Any]:
    """Traffic changes whose new routes name ``version`` (in any slot)."""
    return [
        e
        for e in host.services.registry.history(MODEL)
        if e.kind == "routes" and version in (e.to_value or "")
    ]


def send(host: Host, instance_id: str, action: str, reason: str = "") -> None:
    asyncio.run(
        host.client.raise_event(
            instance_id, OPERATOR_EVENT, {"action": action, "actor": "alice", "reason": reason}
        )
    )


def digits_nan_model() -> bytes:
    """The digits signature, but every probability is NaN (a numerically broken export)."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["input"], ["s"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["s", "NAN"], ["n"]),
            helper.make_node("Expand", ["n", "SHAPE"], ["probabilities"]),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "nan_digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
        ],
        [
            numpy_helper.from_array(np.array([np.nan], np.float32), "NAN"),
            numpy_helper.from_array(np.array([1, 10], np.int64), "SHAPE"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_first_version_is_validated_evaluated_and_promoted(host: Host, data: Data) -> None:
    out = run(host, "1.0.0", sample_models.better_digits(data[0]))

    assert out["outcome"] == "production"
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate) == ("1.0.0", None)
    assert transitions(host, "1.0.0") == [
        (None, "registered"),
        ("registered", "validating"),
        ("validating", "evaluating"),
        ("evaluating", "production"),
    ]
    record = host.services.registry.get_version(MODEL, "1.0.0")
    assert record.signature is not None and record.signature.inputs[0].name == "input"
    report = host.services.store.get_report(MODEL, "1.0.0", "evaluation")
    assert report["outcome"] == "passed" and report["candidate"]["accuracy"] > 0.9
    # DESIGN §5: P = w1·T + w2·R + w3·E in every report; no production version to score here.
    assert set(report["composite"]) == {"candidate"}
    assert report["composite"]["candidate"]["P"] > 0


def test_patch_goes_through_canary_steps_and_is_promoted(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    out = run(host, "1.0.1", sample_models.better_digits(data[0]))

    assert out["outcome"] == "production", out
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.0.1", None, 0)
    assert host.services.registry.get_version(MODEL, "1.0.0").stage is Stage.SUPERSEDED
    assert ("evaluating", "canary") in transitions(host, "1.0.1")
    assert ("canary", "production") in transitions(host, "1.0.1")
    weights = [e.details for e in host.services.registry.history(MODEL) if e.kind == "routes"]
    assert weights  # every traffic change is audited
    assert sorted(host.services.store.list_reports(MODEL, "1.0.1")) == [
        "canary.json",
        "canary.png",
        "evaluation.json",
    ]
    canary = host.services.store.get_report(MODEL, "1.0.1", "canary")
    assert [s["weight_bp"] for s in canary["steps"] if s["verdict"] == "continue"]
    assert canary["steps"][-1]["verdict"] == "promote"
    assert {s["kind"] for s in canary["steps"]} == {"canary"}
    # The composite score of both versions is in every report (DESIGN §5), evaluation included.
    evaluation = host.services.store.get_report(MODEL, "1.0.1", "evaluation")
    for report in (canary, evaluation):
        assert report["composite"]["candidate"]["P"] > 0
        assert report["composite"]["production"]["P"] > 0
    assert "P" in canary["steps"][-1]["composite"]["candidate"]
    # Below 100% production is judged on its own traffic in the same window.
    assert canary["steps"][0]["baseline"]["source"] == "same_window"


def test_corrupt_upload_is_rejected_with_a_clear_reason(host: Host, data: Data) -> None:
    out = run(host, "1.0.0", b"this is not an onnx file at all")

    assert out["outcome"] == "rejected"
    assert "not an ONNX model" in out["reason"]
    record = host.services.registry.get_version(MODEL, "1.0.0")
    assert record.stage is Stage.REJECTED and "not an ONNX model" in record.reason
    assert host.services.registry.get_routes(MODEL).production is None
    assert transitions(host, "1.0.0")[-1] == ("validating", "rejected")


def test_shape_incompatible_minor_is_rejected(host: Host, data: Data) -> None:
    seed_production(host, data)
    out = run(host, "1.1.0", sample_models.broken_signature_digits(data[0]))

    assert out["outcome"] == "rejected"
    assert "incompatible with the production version" in out["reason"]
    assert "'input' shape changed" in out["reason"]
    assert host.services.registry.get_routes(MODEL).production == "1.0.0"
    assert transitions(host, "1.1.0")[-1] == ("validating", "rejected")


def test_nan_model_is_rejected_at_validation(host: Host, data: Data) -> None:
    out = run(host, "1.0.0", digits_nan_model())

    assert out["outcome"] == "rejected"
    assert "non-finite" in out["reason"]
    assert host.services.registry.get_version(MODEL, "1.0.0").stage is Stage.REJECTED


def test_evaluation_regression_is_rejected(host: Host, data: Data) -> None:
    seed_production(host, data)
    out = run(host, "1.0.1", sample_models.linear_digits(data[0]))

    assert out["outcome"] == "rejected"
    assert "evaluation gate failed: accuracy regressed" in out["reason"]
    assert transitions(host, "1.0.1")[-1] == ("evaluating", "rejected")
    report = host.services.store.get_report(MODEL, "1.0.1", "evaluation")
    assert report["outcome"] == "failed"
    assert report["production"]["accuracy"] > report["candidate"]["accuracy"]


def test_latency_regression_in_canary_rolls_back(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    worker.behaviour["1.0.1"] = Behaviour(latency_ms=180.0)
    worker.behaviour["1.0.0"] = Behaviour(latency_ms=4.0)
    out = run(host, "1.0.1", sample_models.better_digits(data[0]))

    assert out["outcome"] == "rolled_back", out
    assert "latency" in out["reason"] or "p95" in out["reason"]
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.0.0", None, 0)
    assert transitions(host, "1.0.1")[-1] == ("canary", "rolled_back")
    assert host.services.store.get_report(MODEL, "1.0.1", "canary")["outcome"] == "rolled_back"


def test_error_regression_in_canary_rolls_back(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    worker.behaviour["1.0.1"] = Behaviour(error_rate=0.3)
    out = run(host, "1.0.1", sample_models.better_digits(data[0]))

    assert out["outcome"] == "rolled_back", out
    assert "error rate" in out["reason"]
    assert host.services.registry.get_version(MODEL, "1.0.1").stage is Stage.ROLLED_BACK


def test_operator_abort_mid_canary(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    slow = {**FAST, "window_s": 30.0, "check_interval_s": 10.0}
    sha = upload(host.services, "1.0.1", sample_models.better_digits(data[0]))
    instance = start(host, "1.0.1", sha, slow)
    host.wait_status(instance, lambda s: s["stage"] == "canary" and s["weight_bp"] == 5000)

    send(host, instance, "abort", "pager went off")
    out = host.wait_done(instance)

    assert out["outcome"] == "rolled_back"
    assert out["reason"] == "aborted by operator alice: pager went off"
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate) == ("1.0.0", None)
    last = host.services.registry.history(MODEL, "1.0.1")[-1]
    assert (last.from_value, last.to_value, last.actor) == ("canary", "rolled_back", "alice")


def test_rollback_during_promotion_reinstates_previous(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    baking = {**FAST, "bake_s": 30.0}
    sha = upload(host.services, "1.0.1", sample_models.better_digits(data[0]))
    instance = start(host, "1.0.1", sha, baking)
    host.wait_status(instance, lambda s: s["stage"] == "production" and s["waiting_for"])

    send(host, instance, "rollback", "customers report bad digits")
    out = host.wait_done(instance)

    assert out["outcome"] == "rolled_back"
    assert "customers report bad digits" in out["reason"]
    registry = host.services.registry
    assert registry.get_routes(MODEL).production == "1.0.0"
    assert registry.get_version(MODEL, "1.0.0").stage is Stage.PRODUCTION
    assert registry.get_version(MODEL, "1.0.1").stage is Stage.ROLLED_BACK
    assert transitions(host, "1.0.0")[-2:] == [
        ("production", "superseded"),
        ("superseded", "production"),
    ]


def test_second_version_waits_for_the_first_to_finish(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    slow = {**FAST, "window_s": 30.0, "check_interval_s": 10.0}
    first = start(
        host, "1.0.1", upload(host.services, "1.0.1", sample_models.better_digits(data[0])), slow
    )
    host.wait_status(first, lambda s: s["stage"] == "canary" and s["weight_bp"] == 5000)
    second = start(
        host, "1.0.2", upload(host.services, "1.0.2", sample_models.better_digits(data[0]))
    )

    waiting = host.wait_status(second, lambda s: s.get("waiting_for"))
    assert waiting["waiting_for"] == "waiting for 1.0.1 to finish"
    assert waiting["stage"] == "evaluating"
    send(host, first, "promote", "looks good")

    assert host.wait_done(first)["outcome"] == "production"
    out = host.wait_done(second)
    assert out["outcome"] == "production", out
    registry = host.services.registry
    assert registry.get_routes(MODEL).production == "1.0.2"
    assert registry.get_version(MODEL, "1.0.1").stage is Stage.SUPERSEDED
    # The second waited in evaluating and entered canary only after the first had left it.
    entered = next(
        e.at
        for e in registry.history(MODEL, "1.0.2")
        if (e.from_value, e.to_value) == ("evaluating", "canary")
    )
    left = next(
        e.at
        for e in registry.history(MODEL, "1.0.1")
        if (e.from_value, e.to_value) == ("canary", "production")
    )
    assert left <= entered
    assert transitions(host, "1.0.2")[-2:] == [("evaluating", "canary"), ("canary", "production")]


def test_second_version_is_refused_when_the_slot_stays_busy(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    slow = {**FAST, "window_s": 60.0, "check_interval_s": 20.0}
    first = start(
        host, "1.0.1", upload(host.services, "1.0.1", sample_models.better_digits(data[0])), slow
    )
    host.wait_status(first, lambda s: s["stage"] == "canary" and s["weight_bp"] == 5000)
    impatient = {**FAST, "slot_wait_timeout_s": 0.6}
    second = run(host, "1.0.2", sample_models.better_digits(data[0]), impatient)

    assert second["outcome"] == "rejected", second
    assert second["reason"].startswith("waited 0.6s for 1.0.1 to finish its rollout")
    assert "only one version of a model may be in shadow or canary at a time" in second["reason"]
    registry = host.services.registry
    record = registry.get_version(MODEL, "1.0.2")
    assert record.stage is Stage.REJECTED and record.reason == second["reason"]
    assert transitions(host, "1.0.2")[-1] == ("evaluating", "rejected")
    # The first rollout's traffic was never touched by the refused one.
    routes = registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == (
        "1.0.0",
        "1.0.1",
        5000,
    )
    assert route_events_naming(host, "1.0.2") == []
    send(host, first, "abort", "test over")
    assert host.wait_done(first)["outcome"] == "rolled_back"


def test_replica_that_never_warms_times_out_and_rolls_back(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    worker.never_warm.add("1.0.1")
    out = run(host, "1.0.1", sample_models.better_digits(data[0]))

    assert out["outcome"] == "rolled_back"
    assert "not warm after" in out["reason"] and "sim-1" in out["reason"]
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.0.0", None, 0)
    record = host.services.registry.get_version(MODEL, "1.0.1")
    assert record.stage is Stage.ROLLED_BACK and record.reason == out["reason"]
    moves = transitions(host, "1.0.1")
    assert moves[-2:] == [("evaluating", "canary"), ("canary", "rolled_back")]
    # It was only ever named at 0% (pre-warm), never given traffic, and then taken off.
    candidate_weights = [
        json.loads(e.to_value or "{}")["candidate_weight_bp"]
        for e in host.services.registry.history(MODEL)
        if e.kind == "routes" and json.loads(e.to_value or "{}")["candidate"] == "1.0.1"
    ]
    assert candidate_weights == [0]
    report = host.services.store.get_report(MODEL, "1.0.1", "canary")
    assert (report["outcome"], report["reason"], report["steps"]) == (
        "rolled_back",
        out["reason"],
        [],
    )


def test_minor_version_shadows_before_canary(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    out = run(host, "1.1.0", sample_models.better_digits(data[0]))

    assert out["outcome"] == "production", out
    moves = transitions(host, "1.1.0")
    assert ("evaluating", "shadow") in moves and ("shadow", "canary") in moves
    store = host.services.store
    assert sorted(store.list_reports(MODEL, "1.1.0")) == [
        "canary.json",
        "canary.png",
        "evaluation.json",
        "shadow.json",
        "shadow.png",
    ]
    shadow, canary = (
        store.get_report(MODEL, "1.1.0", "shadow"),
        store.get_report(MODEL, "1.1.0", "canary"),
    )
    assert (shadow["stage"], shadow["outcome"]) == ("shadow", "passed")
    assert (canary["stage"], canary["outcome"]) == ("canary", "promoted")
    assert shadow["steps"] and {s["kind"] for s in shadow["steps"]} == {"shadow"}
    assert canary["steps"] and {s["kind"] for s in canary["steps"]} == {"canary"}
    assert shadow["composite"]["candidate"]["P"] > 0 and shadow["composite"]["production"]["P"] > 0


def test_major_version_needs_approval(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    sha = upload(host.services, "2.0.0", sample_models.better_digits(data[0]))
    instance = start(host, "2.0.0", sha)
    host.wait_status(instance, lambda s: str(s.get("waiting_for", "")).startswith("approval"))
    assert host.services.registry.get_routes(MODEL).candidate is None

    send(host, instance, "approve")
    assert host.wait_done(instance)["outcome"] == "production"


def test_approval_without_shadow_times_out_and_is_rejected(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    # A patch has no shadow phase; the policy asks for an approve all the same.
    policy = {**FAST, "approval_required": True, "approval_timeout_s": 0.5}
    out = run(host, "1.0.1", sample_models.better_digits(data[0]), policy)

    # It never took traffic, so it ends rejected (DESIGN §3), not rolled back.
    assert out == {
        "outcome": "rejected",
        "stage": "rejected",
        "reason": "no approval within 0.5s (policy approval_required)",
    }
    registry = host.services.registry
    assert registry.get_version(MODEL, "1.0.1").reason == out["reason"]
    assert transitions(host, "1.0.1")[-2:] == [
        ("validating", "evaluating"),
        ("evaluating", "rejected"),
    ]
    routes = registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.shadow) == ("1.0.0", None, None)
    assert route_events_naming(host, "1.0.1") == []


@pytest.mark.parametrize(("action", "label"), [("rollback", "rolled back"), ("abort", "aborted")])
def test_major_version_without_shadow_stopped_while_awaiting_approval_is_rejected(
    host: Host, data: Data, worker: FakeWorker, action: str, label: str
) -> None:
    seed_production(host, data)
    sha = upload(host.services, "2.0.0", sample_models.better_digits(data[0]))
    instance = start(host, "2.0.0", sha, {**FAST, "shadow": False})
    waiting = host.wait_status(
        instance, lambda s: str(s.get("waiting_for", "")).startswith("approval")
    )
    assert waiting["stage"] == "evaluating"

    send(host, instance, action, "wrong export")
    out = host.wait_done(instance)

    assert out == {
        "outcome": "rejected",
        "stage": "rejected",
        "reason": f"{label} by operator alice: wrong export",
    }
    registry = host.services.registry
    last = registry.history(MODEL, "2.0.0")[-1]
    assert (last.from_value, last.to_value, last.actor, last.reason) == (
        "evaluating",
        "rejected",
        "alice",
        out["reason"],
    )
    routes = registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.shadow) == ("1.0.0", None, None)
    assert route_events_naming(host, "2.0.0") == []


def test_major_version_without_shadow_is_approved_then_canaried(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    sha = upload(host.services, "2.0.0", sample_models.better_digits(data[0]))
    instance = start(host, "2.0.0", sha, {**FAST, "shadow": False})
    host.wait_status(instance, lambda s: str(s.get("waiting_for", "")).startswith("approval"))
    send(host, instance, "approve")

    assert host.wait_done(instance)["outcome"] == "production"
    assert transitions(host, "2.0.0")[-2:] == [("evaluating", "canary"), ("canary", "production")]


def test_repeated_starts_never_run_a_second_lifecycle(host: Host, data: Data) -> None:
    sha = upload(host.services, "1.0.0", sample_models.better_digits(data[0]))
    request = LifecycleInput(MODEL, "1.0.0", sha, FAST)
    first = asyncio.run(start_lifecycle(host.client, request))
    second = asyncio.run(start_lifecycle(host.client, request))

    assert first.started and not second.started
    assert first.instance_id == second.instance_id
    host.wait_done(first.instance_id)
    assert [e.to_value for e in host.services.registry.history(MODEL, "1.0.0")].count(
        "production"
    ) == 1


def test_reconciler_resumes_a_version_left_mid_lifecycle(host: Host, data: Data) -> None:
    sha = upload(host.services, "1.0.0", sample_models.better_digits(data[0]))
    stored = host.services.store.stat_model(MODEL, "1.0.0")
    registry = host.services.registry
    registry.register_version(MODEL, "1.0.0", sha256=sha, size=stored.size, blob_path=stored.path)
    registry.transition(MODEL, "1.0.0", Stage.VALIDATING, reason="before a crash", actor="t")

    resumed = asyncio.run(resume_active_lifecycles(host.services, host.client))

    assert len(resumed) == 1
    assert host.wait_done(resumed[0])["outcome"] == "production"
    assert asyncio.run(resume_active_lifecycles(host.services, host.client)) == []


def test_major_version_without_approval_times_out_and_rolls_back(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    out = run(
        host, "2.0.0", sample_models.better_digits(data[0]), {**FAST, "approval_timeout_s": 0.5}
    )

    assert out["outcome"] == "rolled_back"
    assert out["reason"] == "no approval within 0.5s (major version)"
    assert host.services.registry.get_routes(MODEL).shadow is None


def test_blue_green_switches_all_traffic_at_once(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    out = run(
        host,
        "1.0.1",
        sample_models.better_digits(data[0]),
        {**FAST, "strategy": "blue_green", "bake_s": 1.0},
    )

    assert out["outcome"] == "production", out
    candidate_weights = [
        json.loads(e.to_value or "{}")["candidate_weight_bp"]
        for e in host.services.registry.history(MODEL)
        if e.kind == "routes" and json.loads(e.to_value or "{}")["candidate"] == "1.0.1"
    ]
    assert candidate_weights == [0, 10_000]  # pre-warm, then everything at once


def test_error_regression_only_at_full_weight_rolls_back(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    # Healthy at 50%; fails 30% of requests once it takes all traffic.
    worker.behaviour["1.0.1"] = Behaviour(error_rate_at_full_weight=0.3)
    out = run(host, "1.0.1", sample_models.better_digits(data[0]))

    assert out["outcome"] == "rolled_back", out
    assert out["reason"].startswith("canary at 100%: candidate error rate 30.0%")
    assert "production baseline: its own traffic during step 1 (50%)" in out["reason"]
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.0.0", None, 0)
    assert transitions(host, "1.0.1")[-1] == ("canary", "rolled_back")
    report = host.services.store.get_report(MODEL, "1.0.1", "canary")
    assert report["outcome"] == "rolled_back" and report["reason"] == out["reason"]
    half = [s for s in report["steps"] if s["weight_bp"] == 5000]
    last = report["steps"][-1]
    assert half[-1]["verdict"] == "continue"  # healthy at 50%, judged on the same window
    assert {s["baseline"]["source"] for s in half} == {"same_window"}
    assert (last["weight_bp"], last["verdict"]) == (10_000, "rollback")
    # The report says what production was compared with, and it carries production's numbers.
    assert last["baseline"]["source"] == "earlier_steps"
    assert last["baseline"]["requests"] == last["production"]["requests"] > 0
    assert last["composite"]["production"]["P"] < last["composite"]["candidate"]["P"]


def test_blue_green_bake_regression_rolls_back(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    worker.behaviour["1.0.1"] = Behaviour(error_rate_at_full_weight=0.3)
    out = run(
        host,
        "1.0.1",
        sample_models.better_digits(data[0]),
        {**FAST, "strategy": "blue_green", "bake_s": 1.0},
    )

    assert out["outcome"] == "rolled_back", out
    assert out["reason"].startswith("canary at 100%: candidate error rate 30.0%")
    assert "production baseline: its traffic in the" in out["reason"]
    registry = host.services.registry
    assert registry.get_routes(MODEL).production == "1.0.0"
    assert registry.get_version(MODEL, "1.0.0").stage is Stage.PRODUCTION
    assert transitions(host, "1.0.1")[-1] == ("canary", "rolled_back")
    last = host.services.store.get_report(MODEL, "1.0.1", "canary")["steps"][-1]
    assert last["baseline"]["source"] == "before_switch"


def test_ab_test_waits_for_an_operator_decision(host: Host, data: Data, worker: FakeWorker) -> None:
    seed_production(host, data)
    sha = upload(host.services, "1.0.1", sample_models.better_digits(data[0]))
    instance = start(
        host,
        "1.0.1",
        sha,
        {**FAST, "strategy": "ab_test", "ab_split_bp": 3000, "ab_duration_s": 1.0},
    )
    status = host.wait_status(instance, lambda s: "A/B test finished" in str(s["waiting_for"]))
    assert status["weight_bp"] == 3000 and status["stage"] == "canary"
    assert host.services.store.get_report(MODEL, "1.0.1", "canary")["outcome"] == "passed"

    send(host, instance, "promote", "B wins")
    out = host.wait_done(instance)
    assert out["reason"] == "promoted by operator alice: B wins"
    assert host.services.registry.get_routes(MODEL).production == "1.0.1"


def test_too_little_traffic_extends_the_step_then_rolls_back(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    sha = upload(host.services, "1.0.1", sample_models.better_digits(data[0]))
    never_enough = {**FAST, "thresholds": {"min_requests": 1_000_000}}
    instance = start(host, "1.0.1", sha, never_enough)
    extending = host.wait_status(instance, lambda s: "extending the window" in s["reason"])
    assert extending["decision"] == "insufficient_evidence"

    out = host.wait_done(instance)
    assert out["outcome"] == "rolled_back"
    assert "insufficient_evidence after 2 extension(s): too few requests" in out["reason"]
    steps = host.services.store.get_report(MODEL, "1.0.1", "canary")["steps"]
    counts = [s["candidate"]["requests"] for s in steps if s["verdict"] == "insufficient_evidence"]
    assert counts[-1] > counts[0]  # evidence accumulates over the step's extensions


def test_shadow_disagreement_rolls_back_before_any_traffic(
    host: Host, data: Data, worker: FakeWorker
) -> None:
    seed_production(host, data)
    worker.behaviour["1.1.0"] = Behaviour(flip_rate=0.4)
    out = run(host, "1.1.0", sample_models.better_digits(data[0]))

    assert out["outcome"] == "rolled_back", out
    assert out["reason"].startswith("shadow: candidate agrees with production on")
    assert "below the 95% floor" in out["reason"]
    moves = transitions(host, "1.1.0")
    assert moves[-1] == ("shadow", "rolled_back") and ("shadow", "canary") not in moves
    routes = host.services.registry.get_routes(MODEL)
    assert (routes.production, routes.shadow, routes.candidate) == ("1.0.0", None, None)
