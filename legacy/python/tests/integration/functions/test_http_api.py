"""HTTP handlers through the Functions host's own request/response types, against the real
lifecycle on durabletask, Azurite and ONNX Runtime; plus the blob trigger's handler."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import azure.functions as func
import pytest

from lepton.dev import sample_models
from lepton.functions.blob_trigger import handle_model_blob
from lepton.functions.http_api import ROUTES, Route
from tests.integration.functions.conftest import FAST, MODEL, Host, upload
from tests.integration.functions.fakeworker import FakeWorker

pytestmark = pytest.mark.azurite

BASE = "http://127.0.0.1:7071/api/"


def route(name: str) -> Route:
    return next(r for r in ROUTES if r.name == name)


def call(host: Host, name: str, body: Any = None, **params: str) -> tuple[int, Any, dict[str, str]]:
    r = route(name)
    url = BASE + r.route.format(**params)
    raw = json.dumps(body).encode() if body is not None else b""
    request = func.HttpRequest(
        r.methods[0],
        url,
        body=raw,
        route_params=params,
        headers={"content-type": "application/json"},
    )
    response = asyncio.run(r.handler(request, host.client))
    payload = json.loads(response.get_body()) if response.get_body() else None
    return response.status_code, payload, dict(response.headers)


@pytest.fixture
def train(host: Host) -> sample_models.Dataset:
    train, test = sample_models.digits()
    host.services.store.put_dataset(MODEL, "digits", test.x, test.y)
    return train


def test_health_is_the_only_anonymous_route() -> None:
    assert [r.name for r in ROUTES if r.auth == "anonymous"] == ["health"]
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    assert len({(r.route, r.methods) for r in ROUTES}) == len(ROUTES)


def test_start_returns_check_status_urls_and_is_idempotent(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    status, body, headers = call(
        host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0"
    )
    assert status == 202
    instance = body["id"]
    assert headers["Location"] == (
        f"http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/{instance}"
    )
    assert body["sendEventPostUri"].endswith("/raiseEvent/{eventName}")
    again, body2, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    assert (again, body2["id"]) == (202, instance)

    host.wait_done(instance)
    status, detail, _ = call(host, "version_detail", model=MODEL, version="1.0.0")
    assert status == 200
    assert detail["version"]["stage"] == "production"
    assert detail["lifecycle"]["runtime_status"] == "Completed"
    assert detail["lifecycle"]["custom_status"]["stage"] == "production"
    assert "evaluation.json" in detail["reports"]
    status, model, _ = call(host, "model_detail", model=MODEL)
    assert model["routes"]["production"] == "1.0.0"
    assert model["versions"][0] == {
        **model["versions"][0],
        "version": "1.0.0",
        "stage": "production",
    }
    status, models, _ = call(host, "list_models")
    assert models == {"models": [MODEL]}
    status, history, _ = call(host, "version_history", model=MODEL, version="1.0.0")
    assert [e["to"] for e in history["events"]] == [
        "registered",
        "validating",
        "evaluating",
        "production",
    ]


def test_bad_policy_is_refused_before_anything_is_written(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    status, body, _ = call(
        host, "start_lifecycle", {"policy": {"steps_bp": [500, 100]}}, model=MODEL, version="1.0.0"
    )
    assert status == 400
    assert body["error"] == "invalid_policy"
    assert "policy.steps_bp must be strictly increasing" in body["message"]
    assert host.services.registry.list_models() == []


@pytest.mark.parametrize(
    ("params", "body", "status", "code"),
    [
        ({"model": "Digits!", "version": "1.0.0"}, {}, 400, "invalid_model_name"),
        ({"model": MODEL, "version": "v1"}, {}, 400, "invalid_version"),
        ({"model": MODEL, "version": "9.9.9"}, {}, 404, "blob_not_found"),
        ({"model": MODEL, "version": "1.0.0"}, [1, 2], 400, "invalid_input"),
    ],
)
def test_start_errors_are_clear(
    host: Host, params: dict[str, str], body: Any, status: int, code: str
) -> None:
    got, payload, _ = call(host, "start_lifecycle", body, **params)
    assert (got, payload["error"]) == (status, code)
    assert payload["message"]


def test_operator_commands_need_a_running_lifecycle(
    host: Host, train: sample_models.Dataset
) -> None:
    status, body, _ = call(host, "approve", {}, model=MODEL, version="1.0.0")
    assert (status, body["error"]) == (404, "version_not_found")
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    _, started, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    host.wait_done(started["id"])
    status, body, _ = call(host, "rollback", {"reason": "x"}, model=MODEL, version="1.0.0")
    assert (status, body["error"]) == (409, "conflict")
    assert "no running lifecycle" in body["message"] and "PUT /api/models" in body["message"]


def test_abort_over_http_rolls_back_a_running_canary(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    _, first, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    host.wait_done(first["id"])
    worker = FakeWorker(host.services, MODEL).start()
    try:
        upload(host.services, "1.0.1", sample_models.better_digits(train))
        slow = {**FAST, "window_s": 30.0, "check_interval_s": 10.0}
        _, started, _ = call(
            host, "start_lifecycle", {"policy": slow, "actor": "ci"}, model=MODEL, version="1.0.1"
        )
        host.wait_status(started["id"], lambda s: s["weight_bp"] == 5000)
        status, sent, _ = call(
            host, "abort", {"actor": "carol", "reason": "bad deploy"}, model=MODEL, version="1.0.1"
        )
        assert status == 202 and sent["sent"]["action"] == "abort"
        out = host.wait_done(started["id"])
    finally:
        worker.stop()
    assert out["reason"] == "aborted by operator carol: bad deploy"
    _, detail, _ = call(host, "version_detail", model=MODEL, version="1.0.1")
    assert detail["version"]["stage"] == "rolled_back"
    assert detail["version"]["reason"] == "aborted by operator carol: bad deploy"


def test_manual_route_change_is_validated_and_audited(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    _, started, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    host.wait_done(started["id"])

    status, body, _ = call(host, "put_routes", {"candidate_weight_bp": 20000}, model=MODEL)
    assert (status, body["error"]) == (400, "invalid_routes")
    assert "within 0..10000" in body["message"]
    status, body, _ = call(host, "put_routes", {"wieght": 1}, model=MODEL)
    assert status == 400 and "unknown route field(s) ['wieght']" in body["message"]
    status, body, _ = call(
        host, "put_routes", {"candidate": "1.0.0", "candidate_weight_bp": 1}, model=MODEL
    )
    assert (status, body["error"]) == (400, "invalid_routes")
    assert host.services.registry.get_routes(MODEL).sticky_header is None

    status, body, _ = call(
        host,
        "put_routes",
        {"sticky_header": "x-user", "reason": "pin users", "actor": "dan"},
        model=MODEL,
    )
    assert status == 200 and body["sticky_header"] == "x-user"
    last = host.services.registry.history(MODEL)[-1]
    assert (last.kind, last.actor, last.reason) == ("routes", "dan", "pin users")


def test_model_detail_of_unknown_model_is_404(host: Host) -> None:
    status, body, _ = call(host, "model_detail", model="nobody")
    assert (status, body["error"]) == (404, "model_not_found")


def test_blob_trigger_starts_once_and_ignores_other_blobs(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train), policy=FAST)
    assert asyncio.run(handle_model_blob("models/digits/1.0.0/lepton.json", host.client)) is None
    assert asyncio.run(handle_model_blob("models/Bad Name/1.0.0/model.onnx", host.client)) is None

    first = asyncio.run(handle_model_blob("models/digits/1.0.0/model.onnx", host.client))
    duplicate = asyncio.run(handle_model_blob("models/digits/1.0.0/model.onnx", host.client))

    assert first is not None and first == duplicate
    assert host.wait_done(first)["outcome"] == "production"
    registered = [
        e for e in host.services.registry.history(MODEL, "1.0.0") if e.kind == "registered"
    ]
    assert len(registered) == 1


def test_start_keeps_its_policy_on_the_version_and_a_repeat_start_changes_nothing(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    _, started, _ = call(
        host, "start_lifecycle", {"policy": FAST, "actor": "ci"}, model=MODEL, version="1.0.0"
    )
    # Recorded for the restart reconciler (the local durable backend forgets inputs).
    assert host.services.registry.get_version(MODEL, "1.0.0").policy_overrides == FAST
    other = {**FAST, "bake_s": 9.0}
    _, again, _ = call(host, "start_lifecycle", {"policy": other}, model=MODEL, version="1.0.0")
    assert again["id"] == started["id"]
    host.wait_done(started["id"])
    _, detail, _ = call(host, "version_detail", model=MODEL, version="1.0.0")
    # The repeat start found the lifecycle and started nothing: the run's policy stays.
    assert detail["version"]["policy_overrides"] == FAST
    registered = [
        e for e in host.services.registry.history(MODEL, "1.0.0") if e.kind == "registered"
    ]
    assert [(e.actor, e.to_value) for e in registered] == [("ci", "registered")]


def test_start_of_a_changed_file_under_a_registered_version_is_refused(
    host: Host, train: sample_models.Dataset
) -> None:
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    _, started, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    host.wait_done(started["id"])
    # Replaced behind Lepton's back (the model store itself refuses this): versions are immutable.
    container = host.services.store._models
    container.upload_blob(
        f"{MODEL}/1.0.0/model.onnx", sample_models.linear_digits(train), overwrite=True
    )
    status, body, _ = call(host, "start_lifecycle", {"policy": FAST}, model=MODEL, version="1.0.0")
    assert (status, body["error"]) == (409, "version_conflict")
    assert "already registered with different content" in body["message"]
    record = host.services.registry.get_version(MODEL, "1.0.0")
    assert (record.stage.value, record.instance_id) == ("production", started["id"])
