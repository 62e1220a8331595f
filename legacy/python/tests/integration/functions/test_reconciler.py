"""The restart reconciler resumes a lifecycle with the policy its HTTP start was given.

A "restart" here is what the local stack goes through: the in-memory durabletask backend and its
worker stop (forgetting every orchestration), a fresh pair starts on the same Azurite, and the
reconciler restarts each version left in a non-terminal stage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from lepton.dev import sample_models
from lepton.functions.client import start_lifecycle
from lepton.functions.http_api import ROUTES
from lepton.functions.local import resume_active_lifecycles
from lepton.functions.orchestrator import LifecycleInput
from lepton.functions.services import Services, set_services
from lepton.shared.lifecycle import Stage
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage
from tests.integration.functions.conftest import FAST, MODEL, Host, durable_host, upload
from tests.integration.functions.fakeworker import FakeWorker

pytestmark = pytest.mark.azurite

# Two steps (the default has five) and 3 s windows: long enough that the stop lands inside the
# first step, short enough that the resumed run finishes in seconds. The default policy's
# 300 s windows would not finish within the test's timeout.
POLICY: dict[str, Any] = {
    **FAST,
    "steps_bp": [2500, 10000],
    "window_s": 3.0,
    "check_interval_s": 1.0,
}


@pytest.fixture
def services(storage: Storage, tmp_path: Path) -> Iterator[Services]:
    built = Services.from_settings(
        storage.settings, ModelStoreSettings(cache_dir=tmp_path / "cache")
    )
    set_services(built)  # the HTTP handlers use the process-wide services
    yield built
    set_services(None)


def http_start(host: Host, version: str, body: dict[str, Any]) -> str:
    route = next(r for r in ROUTES if r.name == "start_lifecycle")
    request = func.HttpRequest(
        "POST",
        f"http://127.0.0.1:7071/api/models/{MODEL}/versions/{version}/lifecycle",
        body=json.dumps(body).encode(),
        route_params={"model": MODEL, "version": version},
    )
    response = asyncio.run(route.handler(request, host.client))
    assert response.status_code == 202, response.get_body()
    return str(json.loads(response.get_body())["id"])


def test_a_resumed_lifecycle_keeps_the_policy_of_its_http_start(services: Services) -> None:
    train, test = sample_models.digits()
    services.store.put_dataset(MODEL, "digits", test.x, test.y)
    worker = FakeWorker(services, MODEL).start()
    try:
        with durable_host(services) as first:
            sha = upload(services, "1.0.0", sample_models.better_digits(train))
            seeded = asyncio.run(
                start_lifecycle(first.client, LifecycleInput(MODEL, "1.0.0", sha, FAST))
            )
            assert first.wait_done(seeded.instance_id)["outcome"] == "production"

            upload(services, "1.0.1", sample_models.better_digits(train))
            instance = http_start(first, "1.0.1", {"policy": POLICY, "actor": "ci"})
            first.wait_status(instance, lambda s: s["weight_bp"] == 2500)
        # The durable backend is gone; only the registry remembers the run.
        record = services.registry.get_version(MODEL, "1.0.1")
        assert record.stage is Stage.CANARY
        assert record.policy_overrides == POLICY

        with durable_host(services) as second:
            resumed = asyncio.run(resume_active_lifecycles(services, second.client))
            assert resumed == [instance]
            state = second.grpc.get_orchestration_state(instance)
            assert state is not None
            started_with = json.loads(state.serialized_input or "{}")
            assert (started_with["overrides"], started_with["actor"]) == (POLICY, "reconciler")

            out = second.wait_done(instance, timeout=60)
            final = second.grpc.get_orchestration_state(instance)
    finally:
        worker.stop()

    assert out["outcome"] == "production", out
    assert final is not None and final.get_custom_status()["steps"] == 2
    weights = {s["weight_bp"] for s in services.store.get_report(MODEL, "1.0.1", "canary")["steps"]}
    assert weights <= {2500, 10000}  # the start body's steps, not the default 1% → 100%
    assert services.registry.get_routes(MODEL).production == "1.0.1"
