"""The demo scenario end to end: five versions under live load on the real local stack.

Real Azurite, the real Functions handlers hosted locally, the durabletask lifecycle, the blob
watcher → Event Grid webhook → blob trigger path, and the real worker subprocess serving the load
generator over HTTP; the policy is compressed so the run takes well under a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton.dev.demo import demo_policy, run_demo
from lepton.shared.lifecycle import Stage
from lepton.shared.registry import TableRegistry
from tests.conftest import Storage
from tests.e2e._stack import api_for, stack_settings, start_stack, store_for

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


def _transitions(registry: TableRegistry, version: str) -> list[tuple[str | None, str | None]]:
    return [
        (e.from_value, e.to_value)
        for e in registry.history("digits", version)
        if e.kind == "transition"
    ]


def test_demo_scenario_ends_as_designed_with_failures_only_on_the_broken_canary(
    storage: Storage, tmp_path: Path
) -> None:
    settings = stack_settings(tmp_path / "lepton", storage.connection_string)
    stack = start_stack(settings)
    try:
        with api_for(settings) as api:
            result = run_demo(
                api,
                store_for(settings),
                model="digits",
                policy=demo_policy(window_s=3.0),
                log=lambda line: None,
            )
    finally:
        stack.stop()

    stages = {o.version: o.stage for o in result.outcomes}
    why = {o.version: o.reason for o in result.outcomes}
    assert stages == {
        "1.0.0": "production",
        "1.1.0": "production",
        "1.1.1": "rejected",
        "1.2.0": "rolled_back",
        "1.3.0": stages["1.3.0"],
    }, why
    assert stages["1.3.0"] in ("rejected", "rolled_back")
    assert result.as_expected

    registry = TableRegistry(storage.tables)
    final = {v.version: v for v in registry.list_versions("digits")}
    # 1.0.0 was superseded by 1.1.0 after the demo's table row was taken.
    assert final["1.0.0"].stage is Stage.SUPERSEDED
    assert final["1.1.0"].stage is Stage.PRODUCTION
    routes = registry.get_routes("digits")
    assert (routes.production, routes.candidate, routes.candidate_weight_bp) == ("1.1.0", None, 0)
    assert (routes.shadow, routes.shadow_fraction_bp) == (None, 0)

    reasons = {o.version: o.reason for o in result.outcomes}
    assert "signature" in reasons["1.1.1"]
    assert "error rate" in reasons["1.2.0"]
    assert "latency" in reasons["1.3.0"]

    # The audit trail holds every transition once, in order.
    assert _transitions(registry, "1.1.0") == [
        ("registered", "validating"),
        ("validating", "evaluating"),
        ("evaluating", "canary"),
        ("canary", "production"),
    ]
    assert _transitions(registry, "1.1.1")[-1] == ("validating", "rejected")
    assert _transitions(registry, "1.2.0")[-1] == ("canary", "rolled_back")
    assert _transitions(registry, "1.0.0")[-1] == ("production", "superseded")

    store = store_for(settings)
    assert {"evaluation.json", "canary.json"} <= set(store.list_reports("digits", "1.1.0"))
    assert "canary.json" in store.list_reports("digits", "1.2.0")
    canary = store.get_report("digits", "1.2.0", "canary")
    assert canary["outcome"] != "promoted"

    load = result.load
    assert load.sent > 500
    assert load.unseen_sent > 0
    # Callers failed only where the NaN version served its canary share, never elsewhere.
    assert load.failed_by_version.get("1.2.0", 0) > 0
    assert result.failed_outside("1.2.0") == 0, load.failures
    assert load.served.get("1.1.0", 0) > 0
