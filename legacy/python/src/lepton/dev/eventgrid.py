"""Event Grid ``Microsoft.Storage.BlobCreated`` events, as Azure delivers them to a blob trigger.

The Functions host receives blob-trigger events with the Event Grid source on
``POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>``: first a subscription
validation handshake (answered with the validation code), then notifications carrying a JSON
array of events. The local watcher builds the same events and the local host parses them the same
way, so the trigger code path is the one Azure runs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lepton.shared.errors import InvalidInput

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
EVENT_TYPE_HEADER = "aeg-event-type"  # "SubscriptionValidation" | "Notification"
WEBHOOK_PATH = "/runtime/webhooks/blobs"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


@dataclass(frozen=True)
class BlobCreated:
    """The part of a BlobCreated event a blob trigger needs."""

    container: str
    blob_name: str  # name inside the container
    url: str
    etag: str
    content_length: int


def function_key(function_name: str) -> str:
    """The ``functionName`` query value the Functions host expects for a blob trigger."""
    return f"Host.Functions.{function_name}"


def blob_created_event(
    *,
    account_url: str,
    container: str,
    blob_name: str,
    etag: str,
    content_length: int,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    """One event in Event Grid's schema, as a storage account publishes it."""
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/local/resourceGroups/local/providers/"
        "Microsoft.Storage/storageAccounts/devstoreaccount1",
        "subject": f"{_SUBJECT_PREFIX}{container}/blobs/{blob_name}",
        "eventType": BLOB_CREATED,
        "eventTime": datetime.now(UTC).isoformat(),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlockList",
            "requestId": str(uuid.uuid4()),
            "eTag": etag,
            "contentType": content_type,
            "contentLength": content_length,
            "blobType": "BlockBlob",
            "url": f"{account_url.rstrip('/')}/{container}/{blob_name}",
            "sequencer": "0",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
    }


def validation_event(code: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/local",
        "subject": "",
        "eventType": SUBSCRIPTION_VALIDATION,
        "eventTime": datetime.now(UTC).isoformat(),
        "data": {"validationCode": code},
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a webhook body (a JSON array, or one object), or :class:`InvalidInput`."""
    try:
        data = json.loads(body or b"null")
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"the Event Grid body is not JSON ({err.msg}); send an array of events"
        ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise InvalidInput("the Event Grid body must be a JSON array of event objects")
    return data


def validation_code(events: list[dict[str, Any]]) -> str | None:
    """The handshake's validation code if this is a subscription validation request."""
    for event in events:
        if event.get("eventType") == SUBSCRIPTION_VALIDATION:
            code = (event.get("data") or {}).get("validationCode")
            if not isinstance(code, str) or not code:
                raise InvalidInput("the subscription validation event has no data.validationCode")
            return code
    return None


def blob_created(event: dict[str, Any]) -> BlobCreated | None:
    """The blob an event is about, ``None`` for other event types; malformed → InvalidInput."""
    if event.get("eventType") != BLOB_CREATED:
        return None
    subject = event.get("subject")
    data = event.get("data")
    if not isinstance(subject, str) or not subject.startswith(_SUBJECT_PREFIX):
        raise InvalidInput(
            f"BlobCreated event has subject {subject!r}; expected "
            f"'{_SUBJECT_PREFIX}<container>/blobs/<name>'"
        )
    container, sep, name = subject[len(_SUBJECT_PREFIX) :].partition("/blobs/")
    if not sep or not container or not name:
        raise InvalidInput(f"BlobCreated event subject {subject!r} names no container and blob")
    if not isinstance(data, dict):
        raise InvalidInput("BlobCreated event has no data object")
    return BlobCreated(
        container=container,
        blob_name=name,
        url=str(data.get("url", "")),
        etag=str(data.get("eTag", "")),
        content_length=int(data.get("contentLength", 0) or 0),
    )
