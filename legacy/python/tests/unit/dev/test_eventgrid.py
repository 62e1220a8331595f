"""Event Grid BlobCreated events: built as Azure publishes them, parsed strictly."""

from __future__ import annotations

import json

import pytest

from lepton.dev.eventgrid import (
    BLOB_CREATED,
    blob_created,
    blob_created_event,
    function_key,
    parse_events,
    validation_code,
    validation_event,
)
from lepton.shared.errors import InvalidInput


def test_built_event_round_trips_through_the_parser() -> None:
    event = blob_created_event(
        account_url="http://127.0.0.1:10000/devstoreaccount1/",
        container="models",
        blob_name="digits/1.0.0/model.onnx",
        etag="0x8D",
        content_length=42,
    )
    assert event["eventType"] == BLOB_CREATED
    assert (
        event["subject"] == "/blobServices/default/containers/models/blobs/digits/1.0.0/model.onnx"
    )
    parsed = blob_created(parse_events(json.dumps([event]).encode())[0])
    assert parsed is not None
    assert (parsed.container, parsed.blob_name, parsed.etag, parsed.content_length) == (
        "models",
        "digits/1.0.0/model.onnx",
        "0x8D",
        42,
    )
    assert parsed.url == "http://127.0.0.1:10000/devstoreaccount1/models/digits/1.0.0/model.onnx"


def test_validation_handshake_code_is_found_and_other_events_are_not_blobs() -> None:
    events = parse_events(json.dumps(validation_event("xyz")).encode())
    assert validation_code(events) == "xyz"
    assert blob_created(events[0]) is None
    assert validation_code([{"eventType": BLOB_CREATED}]) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"42", "array of event objects"),
        (b"[1, 2]", "array of event objects"),
    ],
)
def test_malformed_bodies_are_refused_with_what_to_send(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_events(body)


def test_malformed_blob_events_and_handshakes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="expected '/blobServices"):
        blob_created({"eventType": BLOB_CREATED, "subject": "/x", "data": {}})
    with pytest.raises(InvalidInput, match="names no container"):
        blob_created(
            {
                "eventType": BLOB_CREATED,
                "subject": "/blobServices/default/containers/models",
                "data": {},
            }
        )
    with pytest.raises(InvalidInput, match="validationCode"):
        validation_code(
            [{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {}}]
        )


def test_function_key_is_the_host_functions_name() -> None:
    assert function_key("model_blob") == "Host.Functions.model_blob"
