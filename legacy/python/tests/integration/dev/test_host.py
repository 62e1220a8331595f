"""The local Functions host over a real socket: route adapter, blob webhook, durable status API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from durabletask import task as dt
from durabletask.client import TaskHubGrpcClient
from durabletask.testing import create_test_backend
from durabletask.worker import TaskHubGrpcWorker

from lepton.dev.azurite import free_port
from lepton.dev.durable_http import durable_routes
from lepton.dev.eventgrid import EVENT_TYPE_HEADER, blob_created_event, validation_event
from lepton.dev.host import build_host_app
from lepton.dev.server import ServerThread
from lepton.shared.errors import ConfigurationError
from tests.integration.dev._echo_app import SPECS, Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def durable() -> Iterator[TaskHubGrpcClient]:
    port = free_port()
    backend = create_test_backend(port=port)
    worker = TaskHubGrpcWorker(host_address=f"127.0.0.1:{port}")

    def waits_for_go(ctx: dt.OrchestrationContext, data: Any) -> Any:
        ctx.set_custom_status({"step": "waiting"})
        event = yield ctx.wait_for_external_event("go")
        return {"input": data, "event": event}

    worker.add_orchestrator(waits_for_go)
    worker.start()  # type: ignore[no-untyped-call]
    client = TaskHubGrpcClient(host_address=f"127.0.0.1:{port}")
    yield client
    client.close()
    worker.stop()  # type: ignore[no-untyped-call]
    backend.stop()


@pytest.fixture
def base_url(recorder: Recorder, durable: TaskHubGrpcClient) -> Iterator[str]:
    async def trigger(event: Any) -> None:
        await recorder(event, "the-client")

    app = build_host_app(
        specs=SPECS,
        client="the-client",
        blob_triggers={"on_model": trigger},
        extra_routes=durable_routes(durable),
    )
    server = ServerThread(app, "127.0.0.1", free_port()).start()
    yield server.url
    server.stop()


def test_route_reaches_the_handler_with_params_headers_body_and_client(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/api/things/a1/items/b2?q=7", content=b'{"x": 1}', headers={"x-test": "yes"}
    )
    assert response.status_code == 201
    assert response.headers["x-handled-by"] == "echo"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "method": "POST",
        "route_params": {"name": "a1", "item": "b2"},
        "params": {"q": "7"},
        "header": "yes",
        "body": '{"x": 1}',
        "client": "the-client",
    }


def test_optional_trailing_parameter_may_be_left_out(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/things/a1/items")
    assert response.status_code == 201
    assert response.json()["route_params"] == {"name": "a1"}


def test_unlisted_method_and_path_are_refused(base_url: str) -> None:
    assert httpx.delete(f"{base_url}/api/things/a1/items/b").status_code == 405
    assert httpx.get(f"{base_url}/api/nothing-here").status_code == 404


def test_lepton_error_escaping_a_handler_becomes_its_status_with_the_message(
    base_url: str,
) -> None:
    response = httpx.get(f"{base_url}/api/models/m/versions/9.9.9")
    assert response.status_code == 404
    assert response.json() == {"error": "version_not_found", "message": "no version 9.9.9"}


def _webhook(base_url: str, name: str = "on_model") -> str:
    return f"{base_url}/runtime/webhooks/blobs?functionName=Host.Functions.{name}"


def test_webhook_answers_the_subscription_validation_handshake(
    base_url: str, recorder: Recorder
) -> None:
    response = httpx.post(
        _webhook(base_url),
        json=[validation_event("abc-123")],
        headers={EVENT_TYPE_HEADER: "SubscriptionValidation"},
    )
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "abc-123"}
    assert recorder.events == []


def test_webhook_hands_each_blob_created_event_to_the_trigger(
    base_url: str, recorder: Recorder
) -> None:
    events = [
        blob_created_event(
            account_url="http://127.0.0.1:1/devstoreaccount1",
            container="models",
            blob_name=f"digits/1.0.{i}/model.onnx",
            etag=f"0x{i}",
            content_length=10 + i,
        )
        for i in range(2)
    ]
    response = httpx.post(
        _webhook(base_url), json=events, headers={EVENT_TYPE_HEADER: "Notification"}
    )
    assert response.status_code == 202
    seen = [(e.container, e.blob_name, e.etag, e.content_length, c) for e, c in recorder.events]
    assert seen == [
        ("models", "digits/1.0.0/model.onnx", "0x0", 10, "the-client"),
        ("models", "digits/1.0.1/model.onnx", "0x1", 11, "the-client"),
    ]


def test_webhook_refuses_unknown_function_and_malformed_bodies(
    base_url: str, recorder: Recorder
) -> None:
    unknown = httpx.post(_webhook(base_url, "nope"), json=[])
    assert unknown.status_code == 404
    assert "Host.Functions.on_model" in unknown.json()["message"]
    bad = httpx.post(_webhook(base_url), content=b"{not json")
    assert bad.status_code == 400
    assert "not JSON" in bad.json()["message"]
    bad_subject = httpx.post(
        _webhook(base_url),
        json=[{"eventType": "Microsoft.Storage.BlobCreated", "subject": "elsewhere", "data": {}}],
    )
    assert bad_subject.status_code == 400
    assert recorder.events == []


def test_webhook_failure_of_the_trigger_is_a_5xx_so_the_sender_retries(
    base_url: str, recorder: Recorder
) -> None:
    recorder.fail_with = ConfigurationError("storage is down")
    event = blob_created_event(
        account_url="http://x/devstoreaccount1",
        container="models",
        blob_name="digits/1.0.0/model.onnx",
        etag="0x1",
        content_length=1,
    )
    response = httpx.post(_webhook(base_url), json=[event])
    assert response.status_code == 500
    assert "storage is down" in response.json()["message"]


def _wait_status(url: str, wanted: str) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(url)
        if response.status_code != 404 and response.json()["runtimeStatus"] == wanted:
            return response
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def test_durable_status_event_and_terminate_routes(
    base_url: str, durable: TaskHubGrpcClient
) -> None:
    instance = durable.schedule_new_orchestration(
        "waits_for_go", input={"n": 1}, instance_id="inst-1"
    )
    url = f"{base_url}/runtime/webhooks/durabletask/instances/{instance}"
    running = _wait_status(url, "Running")
    assert running.status_code == 202
    body = running.json()
    assert body["name"] == "waits_for_go"
    assert body["instanceId"] == "inst-1"
    assert body["input"] == {"n": 1}
    assert set(body) == {
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    }

    sent = httpx.post(f"{url}/raiseEvent/go", json={"ok": True})
    assert sent.status_code == 202
    done = _wait_status(url, "Completed")
    assert done.status_code == 200
    assert done.json()["output"] == {"input": {"n": 1}, "event": {"ok": True}}

    other = durable.schedule_new_orchestration("waits_for_go", input=None, instance_id="inst-2")
    other_url = f"{base_url}/runtime/webhooks/durabletask/instances/{other}"
    _wait_status(other_url, "Running")
    assert httpx.post(f"{other_url}/terminate?reason=enough").status_code == 202
    assert _wait_status(other_url, "Terminated").status_code == 400

    missing = httpx.get(f"{base_url}/runtime/webhooks/durabletask/instances/nope")
    assert missing.status_code == 404
    assert "never started" in missing.json()["message"]
    assert httpx.post(f"{url}/raiseEvent/go", content=b"{oops").status_code == 400
