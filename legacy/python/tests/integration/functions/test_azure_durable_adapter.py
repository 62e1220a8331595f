"""The same lifecycle body runs on azure-functions-durable 1.x (the Functions app's adapter).

A small replay driver plays the Durable Functions extension's part: it calls the registered
orchestrator handle (``Orchestrator.create``, as the Functions host does) with the growing history,
runs each newly scheduled activity for real (Azurite, ONNX Runtime), fires timers by advancing the
orchestration clock, raises operator events when asked, and appends the history events the
extension would record, until the orchestration is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.durable_functions import Orchestrator

from lepton.dev import sample_models
from lepton.functions.activities import ACTIVITIES
from lepton.functions.adapter_azure import azure_orchestrator
from lepton.functions.instance import lifecycle_instance_id
from lepton.functions.orchestrator import LifecycleInput, lifecycle
from lepton.functions.services import Services
from lepton.shared.lifecycle import Stage
from lepton.shared.workers import Heartbeat
from tests.integration.functions.conftest import FAST, MODEL, Host, upload

pytestmark = pytest.mark.azurite

_CALL_ACTIVITY, _CALL_ACTIVITY_WITH_RETRY, _CREATE_TIMER = 0, 1, 5
_TS = "%Y-%m-%dT%H:%M:%S.%fZ"

EventPicker = Callable[[dict[str, Any]], dict[str, Any] | None]


class ReplayDriver:
    def __init__(self, services: Services, request: LifecycleInput) -> None:
        self.services = services
        self.request = request
        self.instance_id = lifecycle_instance_id(request.model, request.version, request.sha256)
        self.clock = datetime.now(UTC)
        self.history: list[dict[str, Any]] = []
        self.handle = Orchestrator.create(azure_orchestrator(lifecycle))
        self.activity_calls: list[str] = []

    def _event(self, kind: int, **fields: Any) -> None:
        self.history.append(
            {
                "EventType": kind,
                "EventId": fields.pop("EventId", -1),
                "IsPlayed": False,
                "Timestamp": self.clock.strftime(_TS),
                **fields,
            }
        )

    def run(self, pick_event: EventPicker | None = None, max_episodes: int = 200) -> Any:
        self._event(12)  # OrchestratorStarted
        self._event(
            0, Input=json.dumps(self.request.to_json()), Name="lepton_lifecycle", Version=""
        )
        done = 0
        for _ in range(max_episodes):
            body = json.dumps(
                {
                    "history": self.history,
                    "instanceId": self.instance_id,
                    "isReplaying": False,
                    "parentInstanceId": None,
                    "input": json.dumps(self.request.to_json()),
                }
            )
            state = json.loads(self.handle(body))
            if state.get("isDone"):
                return state.get("output"), state.get("customStatus")
            actions = [
                a
                for group in state["actions"]
                for a in group
                if a["actionType"] in (_CALL_ACTIVITY, _CALL_ACTIVITY_WITH_RETRY, _CREATE_TIMER)
            ]
            new = actions[done:]
            assert new, f"orchestration is stuck: {state}"
            self._event(12)  # a new episode starts
            for offset, action in enumerate(new):
                task_id = done + offset
                if action["actionType"] == _CREATE_TIMER:
                    command = pick_event(state.get("customStatus") or {}) if pick_event else None
                    if command is not None:
                        self._event(15, Name="operator", Input=json.dumps(command))
                        pick_event = None  # one scripted command per run
                    self.clock = max(
                        self.clock,
                        datetime.strptime(
                            action["fireAt"].replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z"
                        ),
                    )
                    self._event(10, EventId=task_id, FireAt=action["fireAt"])
                    self._event(11, TimerId=task_id, FireAt=action["fireAt"])
                else:
                    name = action["functionName"]
                    self.activity_calls.append(name)
                    result = ACTIVITIES[name](self.services, json.loads(action["input"]))
                    self._event(4, EventId=task_id, Name=name)
                    self._event(5, TaskScheduledId=task_id, Result=json.dumps(result))
            done += len(new)
        raise AssertionError("orchestration did not finish")


def _start(host: Host, version: str, data: bytes) -> ReplayDriver:
    sha = upload(host.services, version, data)
    return ReplayDriver(host.services, LifecycleInput(MODEL, version, sha, FAST))


@pytest.fixture
def train(host: Host) -> sample_models.Dataset:
    train, test = sample_models.digits()
    host.services.store.put_dataset(MODEL, "digits", test.x, test.y)
    return train


def test_first_version_runs_to_production_on_the_azure_adapter(
    host: Host, train: sample_models.Dataset
) -> None:
    driver = _start(host, "1.0.0", sample_models.better_digits(train))
    output, status = driver.run()

    assert output["outcome"] == "production"
    assert status["stage"] == "production" and status["reason"]
    # Fan-out: both evaluation shards were scheduled in one episode and merged by compare.
    assert driver.activity_calls.count("lepton_evaluate_shard") == 2
    assert host.services.registry.get_routes(MODEL).production == "1.0.0"


def test_operator_promote_during_canary_on_the_azure_adapter(
    host: Host, train: sample_models.Dataset
) -> None:
    first, _ = _start(host, "1.0.0", sample_models.better_digits(train)).run()
    assert first["outcome"] == "production"
    # A replica that already has both versions ready (heartbeat at the orchestration's clock).
    host.services.workers.beat(
        Heartbeat(
            "r1",
            "http://127.0.0.1:0",
            "CPUExecutionProvider",
            datetime.now(UTC) + timedelta(hours=1),
            ready={MODEL: ("1.0.0", "1.0.1")},
        )
    )
    driver = _start(host, "1.0.1", sample_models.better_digits(train))

    def promote_in_canary(status: dict[str, Any]) -> dict[str, Any] | None:
        if status.get("stage") == "canary" and status.get("weight_bp", 0) > 0:
            return {"action": "promote", "actor": "bob", "reason": "ship it"}
        return None

    output, status = driver.run(promote_in_canary)

    assert output == {
        "outcome": "production",
        "stage": "production",
        "reason": "promoted by operator bob: ship it",
    }
    assert status["last_command"]["actor"] == "bob"
    registry = host.services.registry
    assert registry.get_version(MODEL, "1.0.0").stage is Stage.SUPERSEDED
    assert registry.get_routes(MODEL).production == "1.0.1"
    assert "lepton_retire" in driver.activity_calls
