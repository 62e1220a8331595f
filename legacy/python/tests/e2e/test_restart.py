"""Killing the local stack mid-canary loses nothing: the reconciler finishes the lifecycle.

The in-memory durabletask backend forgets every orchestration when the stack stops; on the next
start the reconciler restarts the lifecycle of each version left in a non-terminal stage, and the
orchestrator continues from the stage stored in the registry. The blob watcher's ledger keeps the
already-delivered upload from being delivered again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lepton.dev import sample_models
from lepton.dev.demo import DATASET, demo_policy, push_version, wait_final, wait_servable
from lepton.dev.loadgen import LoadGenerator
from lepton.shared.errors import VersionNotFound
from lepton.shared.lifecycle import Stage
from lepton.shared.registry import TableRegistry
from tests.conftest import Storage
from tests.e2e._stack import api_for, stack_settings, start_stack, store_for

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


def _wait_stage(registry: TableRegistry, version: str, stage: Stage, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            current = registry.get_version("digits", version).stage
        except VersionNotFound:
            current = None  # the blob trigger has not registered it yet
        if current is stage:
            return
        assert time.monotonic() < deadline, f"{version} still {current}"
        time.sleep(0.1)


def test_a_stack_killed_mid_canary_finishes_the_lifecycle_after_restart(
    storage: Storage, tmp_path: Path
) -> None:
    settings = stack_settings(tmp_path / "lepton", storage.connection_string)
    train, test = sample_models.digits()
    store = store_for(settings)
    registry = TableRegistry(storage.tables)
    store.put_dataset("digits", DATASET, test.x, test.y)
    # Long enough windows that the stop lands inside the canary, short enough to finish fast.
    policy = demo_policy(window_s=3.0)

    first = start_stack(settings)
    try:
        with api_for(settings) as api:
            push_version(store, "digits", "1.0.0", sample_models.linear_digits(train), policy)
            wait_final(api, "digits", "1.0.0", 60)
            wait_servable(api, "digits", test.x[:1], 60)
            load = LoadGenerator(
                settings.worker_url,
                "digits",
                test.x,
                sample_models.FEATURE_MAX,
                unseen_fraction=0.0,
                rps=80,
            ).start()
            push_version(store, "digits", "1.1.0", sample_models.better_digits(train), policy)
            _wait_stage(registry, "1.1.0", Stage.CANARY, 60)
            deadline = time.monotonic() + 30
            while registry.get_routes("digits").candidate_weight_bp == 0:  # until it has traffic
                assert time.monotonic() < deadline
                time.sleep(0.1)
            before_kill = registry.get_routes("digits")
            load.stop()
    finally:
        first.stop()
    assert before_kill.candidate == "1.1.0"
    assert registry.get_version("digits", "1.1.0").stage is Stage.CANARY

    second = start_stack(settings)
    try:
        assert second.resumed is not None
        resumed = list(second.resumed)
        assert len(resumed) == 1 and "digits-1.1.0" in resumed[0]
        with api_for(settings) as api:
            wait_servable(api, "digits", test.x[:1], 60)
            load = LoadGenerator(
                settings.worker_url,
                "digits",
                test.x,
                sample_models.FEATURE_MAX,
                unseen_fraction=0.0,
                rps=80,
            ).start()
            try:
                detail = wait_final(api, "digits", "1.1.0", 120)
            finally:
                after = load.stop()
        assert second.watcher is not None
        redelivered = list(second.watcher.delivered)
    finally:
        second.stop()

    assert detail["version"]["stage"] == "production", detail["version"]["reason"]
    assert redelivered == []  # the ledger survived the restart: no duplicate BlobCreated
    ledger = json.loads((settings.data_dir / "watcher" / "delivered.json").read_text())
    assert sorted(ledger["delivered"]) == ["digits/1.0.0/model.onnx", "digits/1.1.0/model.onnx"]

    # Nothing lost, nothing doubled: each transition once, in lifecycle order.
    transitions = [
        (e.from_value, e.to_value, e.actor)
        for e in registry.history("digits", "1.1.0")
        if e.kind == "transition"
    ]
    assert [(a, b) for a, b, _ in transitions] == [
        ("registered", "validating"),
        ("validating", "evaluating"),
        ("evaluating", "canary"),
        ("canary", "production"),
    ]
    assert registry.get_version("digits", "1.0.0").stage is Stage.SUPERSEDED
    routes = registry.get_routes("digits")
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.1.0", None, 0)
    assert after.failed == 0, after.failures
