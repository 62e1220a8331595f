"""The registry on a real Azurite: versions, transitions under concurrency, routes, audit log."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from lepton.shared.errors import (
    ConcurrencyConflict,
    IllegalTransition,
    InvalidModelName,
    InvalidRoutes,
    InvalidVersion,
    VersionConflict,
    VersionNotFound,
)
from lepton.shared.lifecycle import Stage
from lepton.shared.records import Routes
from lepton.shared.registry import TableRegistry
from lepton.shared.storage import EVENTS_TABLE, VERSIONS_TABLE
from tests.conftest import Storage

pytestmark = pytest.mark.azurite
SHA_A, SHA_B = "a" * 64, "b" * 64


def _register(reg: TableRegistry, version: str, sha: str = SHA_A, model: str = "digits") -> None:
    reg.register_version(
        model, version, sha256=sha, size=10, blob_path=f"{model}/{version}/model.onnx", actor="test"
    )


def _advance(reg: TableRegistry, version: str, *stages: Stage) -> None:
    for stage in stages:
        reg.transition("digits", version, stage, reason=f"to {stage}", actor="test")


def _rows(storage: Storage, table: str) -> list[dict[str, object]]:
    return list(storage.tables.get_table_client(table).list_entities())


def test_register_is_idempotent_for_the_same_content(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    _register(reg, "1.0.0")
    record = reg.get_version("digits", "1.0.0")
    assert record.stage is Stage.REGISTERED
    assert record.sha256 == SHA_A
    assert len(_rows(storage, VERSIONS_TABLE)) == 1
    assert [e.kind for e in reg.history("digits", "1.0.0")] == ["registered"]


def test_same_version_with_other_content_is_a_conflict_and_changes_nothing(
    storage: Storage,
) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    with pytest.raises(VersionConflict, match="already registered with different content"):
        _register(reg, "1.0.0", SHA_B)
    with pytest.raises(VersionConflict, match="same SemVer precedence"):
        _register(reg, "1.0.0+build.7")
    assert reg.get_version("digits", "1.0.0").sha256 == SHA_A
    assert len(_rows(storage, VERSIONS_TABLE)) == 1
    assert len(_rows(storage, EVENTS_TABLE)) == 1


@pytest.mark.parametrize(
    ("model", "version", "error"),
    [
        ("Digits", "1.0.0", InvalidModelName),
        ("../x", "1.0.0", InvalidModelName),
        ("digits", "1.0", InvalidVersion),
        ("digits", "1.0.0/../../x", InvalidVersion),
    ],
)
def test_invalid_names_are_refused_before_any_write(
    storage: Storage, model: str, version: str, error: type[Exception]
) -> None:
    reg = TableRegistry(storage.tables)
    with pytest.raises(error):
        reg.register_version(model, version, sha256=SHA_A, size=1, blob_path="x")
    assert _rows(storage, VERSIONS_TABLE) == []
    assert _rows(storage, EVENTS_TABLE) == []


def test_list_sorts_by_semver_not_by_text(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    for v in ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0", "1.2.0-alpha", "10.0.0"]:
        _register(reg, v)
    _register(reg, "1.0.0", model="other")
    assert [v.version for v in reg.list_versions("digits")] == [
        "0.9.0",
        "1.2.0-alpha",
        "1.2.0-rc.1",
        "1.2.0",
        "1.10.0",
        "10.0.0",
    ]
    assert reg.list_models() == ["digits", "other"]
    with pytest.raises(VersionNotFound, match=r"has no version 2\.0\.0"):
        reg.get_version("digits", "2.0.0")


def test_transitions_are_checked_and_audited(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    _advance(reg, "1.0.0", Stage.VALIDATING, Stage.EVALUATING)
    with pytest.raises(IllegalTransition, match="cannot move a version from 'evaluating'"):
        reg.transition("digits", "1.0.0", Stage.SUPERSEDED, reason="x", actor="test")
    record = reg.get_version("digits", "1.0.0")
    assert record.stage is Stage.EVALUATING
    history = reg.history("digits", "1.0.0")
    assert [(e.from_value, e.to_value) for e in history] == [
        (None, "registered"),
        ("registered", "validating"),
        ("validating", "evaluating"),
    ]
    assert history[-1].actor == "test"
    assert history[-1].reason == "to evaluating"


def test_concurrent_transitions_exactly_one_wins(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    _advance(reg, "1.0.0", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def move(target: Stage) -> None:
        registry = TableRegistry(storage.tables)
        barrier.wait()
        try:
            registry.transition(
                "digits",
                "1.0.0",
                target,
                reason=target.value,
                actor=target.value,
                expected_from=Stage.CANARY,
            )
            outcomes.append(f"won:{target.value}")
        except ConcurrencyConflict as err:
            assert "another actor" in str(err)
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=move, args=(s,)) for s in (Stage.PRODUCTION, Stage.ROLLED_BACK)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "won"]
    winner = next(o.split(":")[1] for o in outcomes if o.startswith("won"))
    record = reg.get_version("digits", "1.0.0")
    assert record.stage.value == winner
    history = reg.history("digits", "1.0.0")
    assert [e.to_value for e in history].count(winner) == 1
    assert history[-1].to_value == winner
    assert len(history) == 5  # registered + 3 moves + exactly one winner


def test_retried_transition_with_expected_from_is_idempotent(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    first = reg.transition(
        "digits", "1.0.0", Stage.VALIDATING, reason="r", actor="a", expected_from=Stage.REGISTERED
    )
    again = reg.transition(
        "digits", "1.0.0", Stage.VALIDATING, reason="r", actor="a", expected_from=Stage.REGISTERED
    )
    assert again.sequence == first.sequence == 1
    assert len(reg.history("digits", "1.0.0")) == 2


def test_a_lost_audit_event_is_restored(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    _advance(reg, "1.0.0", Stage.VALIDATING)
    events = storage.tables.get_table_client(EVENTS_TABLE)
    last = max(_rows(storage, EVENTS_TABLE), key=lambda e: str(e["RowKey"]))
    # Simulates a crash between the version write and the event append.
    events.delete_entity(str(last["PartitionKey"]), str(last["RowKey"]))
    assert len(_rows(storage, EVENTS_TABLE)) == 1
    history = reg.history("digits", "1.0.0")
    assert [e.to_value for e in history] == ["registered", "validating"]


def _to_production(reg: TableRegistry, version: str) -> None:
    _register(reg, version)
    _advance(reg, version, Stage.VALIDATING, Stage.EVALUATING, Stage.PRODUCTION)


def test_routes_round_trip_with_generation_and_audit(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    assert reg.get_routes("digits") == Routes(model="digits")
    _to_production(reg, "1.0.0")
    _register(reg, "1.0.1")
    _advance(reg, "1.0.1", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    first = reg.set_routes(Routes("digits", production="1.0.0"), actor="test", reason="initial")
    second = reg.set_routes(
        replace(first, candidate="1.0.1", candidate_weight_bp=500, sticky_header="x-user"),
        actor="test",
        reason="canary 5%",
    )
    assert (first.generation, second.generation) == (1, 2)
    stored = reg.get_routes("digits")
    assert stored.candidate_weight_bp == 500
    assert stored.sticky_header == "x-user"
    route_events = [e for e in reg.history("digits") if e.kind == "routes"]
    assert [e.reason for e in route_events] == ["initial", "canary 5%"]


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            Routes("digits", production="1.0.0", candidate="1.0.1", candidate_weight_bp=10_001),
            "within 0..10000",
        ),
        (Routes("digits", production="1.0.0", candidate_weight_bp=10), "needs a candidate"),
        (
            Routes("digits", production="1.0.0", candidate="1.0.0", candidate_weight_bp=10),
            "must be different",
        ),
        (Routes("digits", production="9.9.9"), "production version 9.9.9 is not registered"),
        (Routes("digits", production="1.0.1"), "is in stage 'canary'"),
        (
            Routes("digits", production="1.0.0", shadow="1.0.2", shadow_fraction_bp=100),
            "shadow version 1.0.2 is in stage 'rejected'",
        ),
        (Routes("digits", production="1.0.0", sticky_header="x user"), "not a valid header"),
    ],
)
def test_invalid_routes_are_refused_and_keep_the_old_ones(
    storage: Storage, routes: Routes, message: str
) -> None:
    reg = TableRegistry(storage.tables)
    _to_production(reg, "1.0.0")
    _register(reg, "1.0.1")
    _advance(reg, "1.0.1", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    _register(reg, "1.0.2")
    _advance(reg, "1.0.2", Stage.VALIDATING, Stage.REJECTED)
    before = reg.set_routes(Routes("digits", production="1.0.0"), actor="t", reason="initial")
    with pytest.raises(InvalidRoutes, match=message):
        reg.set_routes(routes, actor="t", reason="bad")
    assert reg.get_routes("digits") == before
    assert [e.reason for e in reg.history("digits") if e.kind == "routes"] == ["initial"]


def test_concurrent_route_writers_conflict_instead_of_overwriting(storage: Storage) -> None:
    reg = TableRegistry(storage.tables)
    _to_production(reg, "1.0.0")
    _register(reg, "1.0.1")
    _advance(reg, "1.0.1", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    base = reg.set_routes(Routes("digits", production="1.0.0"), actor="t", reason="initial")
    reg.set_routes(
        replace(base, candidate="1.0.1", candidate_weight_bp=100), actor="a", reason="first writer"
    )
    with pytest.raises(ConcurrencyConflict, match="changed by another actor"):
        reg.set_routes(
            replace(base, candidate="1.0.1", candidate_weight_bp=9000),
            actor="b",
            reason="stale writer",
        )
    assert reg.get_routes("digits").candidate_weight_bp == 100


def test_policy_overrides_of_a_run_round_trip_and_are_replaced_by_the_next_run(
    storage: Storage,
) -> None:
    reg = TableRegistry(storage.tables)
    _register(reg, "1.0.0")
    assert reg.get_version("digits", "1.0.0").policy_overrides == {}
    overrides = {"steps_bp": [5000, 10000], "thresholds": {"min_requests": 40}}
    reg.annotate("digits", "1.0.0", policy_overrides=overrides)
    _advance(reg, "1.0.0", Stage.VALIDATING)  # transitions leave the run's metadata alone
    record = reg.get_version("digits", "1.0.0")
    assert record.policy_overrides == overrides
    assert record.to_json()["policy_overrides"] == overrides
    reg.annotate("digits", "1.0.0", instance_id="run-2")
    assert reg.get_version("digits", "1.0.0").policy_overrides == overrides
    reg.annotate("digits", "1.0.0", policy_overrides={})  # a run without overrides clears them
    assert reg.get_version("digits", "1.0.0").policy_overrides == {}
