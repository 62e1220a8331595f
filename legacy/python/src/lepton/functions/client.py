"""The lifecycle client port: start, inspect, signal and stop lifecycle orchestrations.

Two adapters: :class:`AzureLifecycleClient` over Durable Functions' ``DurableOrchestrationClient``
(the Functions app) and :class:`DurableTaskLifecycleClient` over durabletask's blocking
``TaskHubGrpcClient`` (the local stack; calls run in a thread). :func:`start_lifecycle` is the
one idempotent way to start: it derives the instance id from model, version and sha256 and never
starts a second orchestration while one exists for that upload.
:func:`start_lifecycle_with_overrides` (the HTTP start) also keeps the run's policy overrides on
the version row, where the restart reconciler finds them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import azure.durable_functions as df
import azure.functions as func
import grpc
from durabletask import client as dtc
from durabletask.internal import orchestrator_service_pb2 as pb

from lepton.functions import names
from lepton.functions.instance import lifecycle_instance_id
from lepton.functions.orchestrator import LifecycleInput
from lepton.shared.model_store import StoredModel
from lepton.shared.registry import Registry

# Runtime statuses after which the same instance id may run again (e.g. after a host crash).
RESTARTABLE = frozenset({"Failed", "Terminated"})


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    runtime_status: str  # Durable's names: Pending, Running, Completed, Failed, Terminated, ...
    custom_status: Any
    output: Any
    created: str | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "runtime_status": self.runtime_status,
            "custom_status": self.custom_status,
            "output": self.output,
            "created": self.created,
            "updated": self.updated,
        }


class LifecycleClient(Protocol):
    async def start(self, instance_id: str, input: dict[str, Any]) -> None: ...

    async def status(self, instance_id: str) -> InstanceStatus | None: ...

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None: ...

    async def terminate(self, instance_id: str, reason: str) -> None: ...

    def check_status_response(
        self, request: func.HttpRequest, instance_id: str
    ) -> func.HttpResponse: ...


@dataclass(frozen=True)
class Started:
    instance_id: str
    started: bool  # False: a lifecycle for this upload already exists


async def start_lifecycle(client: LifecycleClient, request: LifecycleInput) -> Started:
    """Start the lifecycle of an upload unless one already runs (or ran) for it."""
    instance_id = lifecycle_instance_id(request.model, request.version, request.sha256)
    existing = await client.status(instance_id)
    if existing is not None and existing.runtime_status not in RESTARTABLE:
        return Started(instance_id, False)
    started = True
    try:
        await client.start(instance_id, request.to_json())
    except grpc.RpcError as err:
        if err.code() is not grpc.StatusCode.ALREADY_EXISTS:  # a concurrent start won
            raise
        started = False
    return Started(instance_id, started)


async def start_lifecycle_with_overrides(
    client: LifecycleClient,
    registry: Registry,
    upload: StoredModel,
    *,
    overrides: dict[str, Any],
    actor: str,
) -> Started:
    """Start like :func:`start_lifecycle`, keeping the run's policy overrides on the version row.

    The local stack's in-memory durable backend forgets orchestration inputs on restart, and the
    reconciler resumes each unfinished version from its registry row, so the overrides of an HTTP
    start have to live there too. The version is registered first (idempotent per content; a
    different file under the same version is refused here, before anything runs) so the row
    exists before the orchestration does. The overrides are written only when this call started
    the run: a start that found a lifecycle already running leaves that run's overrides alone,
    and of two racing starts only the winner writes. (A crash between the start and the write
    loses only the overrides: the reconciler then resumes with the manifest's policy.)
    """
    await asyncio.to_thread(
        registry.register_version,
        upload.model,
        upload.version,
        sha256=upload.sha256,
        size=upload.size,
        blob_path=upload.path,
        actor=actor,
    )
    request = LifecycleInput(upload.model, upload.version, upload.sha256, overrides, actor)
    started = await start_lifecycle(client, request)
    if started.started:
        await asyncio.to_thread(
            registry.annotate, upload.model, upload.version, policy_overrides=overrides
        )
    return started


def _status_name(raw: Any) -> str:
    text = str(getattr(raw, "name", raw) or "")
    return "".join(part.capitalize() for part in text.lower().split("_"))


def _loads(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class DurableTaskLifecycleClient:
    """:class:`LifecycleClient` over durabletask's gRPC client (local stack, tests)."""

    def __init__(self, client: dtc.TaskHubGrpcClient) -> None:
        self._client = client

    async def start(self, instance_id: str, input: dict[str, Any]) -> None:
        policy = pb.OrchestrationIdReusePolicy(
            replaceableStatus=[pb.ORCHESTRATION_STATUS_FAILED, pb.ORCHESTRATION_STATUS_TERMINATED]
        )
        await asyncio.to_thread(
            self._client.schedule_new_orchestration,
            names.LIFECYCLE_ORCHESTRATOR,
            input=input,
            instance_id=instance_id,
            reuse_id_policy=policy,
        )

    async def status(self, instance_id: str) -> InstanceStatus | None:
        state = await asyncio.to_thread(self._client.get_orchestration_state, instance_id)
        if state is None:
            return None
        return InstanceStatus(
            instance_id=state.instance_id,
            runtime_status=_status_name(state.runtime_status),
            custom_status=_loads(state.serialized_custom_status),
            output=_loads(state.serialized_output),
            created=state.created_at.isoformat() if state.created_at else None,
            updated=state.last_updated_at.isoformat() if state.last_updated_at else None,
        )

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        await asyncio.to_thread(
            self._client.raise_orchestration_event, instance_id, name, data=data
        )

    async def terminate(self, instance_id: str, reason: str) -> None:
        await asyncio.to_thread(self._client.terminate_orchestration, instance_id, output=reason)

    def check_status_response(
        self, request: func.HttpRequest, instance_id: str
    ) -> func.HttpResponse:
        parts = urlsplit(request.url)
        base = f"{parts.scheme}://{parts.netloc}/runtime/webhooks/durabletask/instances/"
        base += quote(instance_id, safe="")
        payload = {
            "id": instance_id,
            "statusQueryGetUri": base,
            "sendEventPostUri": base + "/raiseEvent/{eventName}",
            "terminatePostUri": base + "/terminate?reason={text}",
            "purgeHistoryDeleteUri": base,
        }
        return func.HttpResponse(
            json.dumps(payload),
            status_code=202,
            mimetype="application/json",
            headers={"Location": base, "Retry-After": "10"},
        )


class AzureLifecycleClient:
    """:class:`LifecycleClient` over Durable Functions' orchestration client (Azure)."""

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self._client = client

    async def start(self, instance_id: str, input: dict[str, Any]) -> None:
        await self._client.start_new(names.LIFECYCLE_ORCHESTRATOR, instance_id, input)

    async def status(self, instance_id: str) -> InstanceStatus | None:
        state = await self._client.get_status(instance_id)
        if state is None or state.runtime_status is None:
            return None
        return InstanceStatus(
            instance_id=instance_id,
            runtime_status=str(state.runtime_status.value),
            custom_status=state.custom_status,
            output=state.output,
            created=state.created_time.isoformat() if state.created_time else None,
            updated=state.last_updated_time.isoformat() if state.last_updated_time else None,
        )

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        await self._client.raise_event(instance_id, name, data)

    async def terminate(self, instance_id: str, reason: str) -> None:
        await self._client.terminate(instance_id, reason)

    def check_status_response(
        self, request: func.HttpRequest, instance_id: str
    ) -> func.HttpResponse:
        response: func.HttpResponse = self._client.create_check_status_response(
            request, instance_id
        )
        return response
