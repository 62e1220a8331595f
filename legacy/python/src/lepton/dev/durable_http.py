"""The Durable Functions instance-management HTTP API, served locally over the durabletask client.

Check-status URLs returned by the lifecycle API point at
``/runtime/webhooks/durabletask/instances/{id}`` exactly as in Azure; locally this module answers
them from the in-memory durabletask backend: ``GET`` the status (Durable's JSON shape and status
codes: 202 while running, 200 when completed, 400 when failed or terminated, 404 when unknown),
``POST .../raiseEvent/{event}`` and ``POST .../terminate?reason=``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from durabletask.client import OrchestrationState, OrchestrationStatus, TaskHubGrpcClient
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

INSTANCES_PATH = "/runtime/webhooks/durabletask/instances"

_RUNTIME_STATUS = {
    OrchestrationStatus.RUNNING: "Running",
    OrchestrationStatus.COMPLETED: "Completed",
    OrchestrationStatus.FAILED: "Failed",
    OrchestrationStatus.TERMINATED: "Terminated",
    OrchestrationStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    OrchestrationStatus.PENDING: "Pending",
    OrchestrationStatus.SUSPENDED: "Suspended",
}


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_or_none(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def status_json(state: OrchestrationState) -> dict[str, Any]:
    """An instance's status in the Durable Functions HTTP API shape."""
    output = _json_or_none(state.serialized_output)
    if state.failure_details is not None and output is None:
        output = state.failure_details.message
    return {
        "name": state.name,
        "instanceId": state.instance_id,
        "runtimeStatus": _RUNTIME_STATUS.get(state.runtime_status, str(state.runtime_status)),
        "input": _json_or_none(state.serialized_input),
        "customStatus": _json_or_none(state.serialized_custom_status),
        "output": output,
        "createdTime": _iso(state.created_at),
        "lastUpdatedTime": _iso(state.last_updated_at),
    }


def _status_code(state: OrchestrationState) -> int:
    if state.runtime_status is OrchestrationStatus.COMPLETED:
        return 200
    if state.runtime_status in (OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED):
        return 400
    return 202


def _not_found(instance_id: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": "not_found",
            "message": f"no orchestration instance {instance_id!r}: it never started, or the local "
            "stack restarted (the reconciler restarts active lifecycles under new runs)",
        },
        status_code=404,
    )


def durable_routes(client: TaskHubGrpcClient) -> list[Route]:
    """Starlette routes of the instance-management API over ``client`` (blocking gRPC → thread)."""

    async def get_status(request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        state = await asyncio.to_thread(client.get_orchestration_state, instance_id)
        if state is None:
            return _not_found(instance_id)
        return JSONResponse(status_json(state), status_code=_status_code(state))

    async def raise_event(request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        event = request.path_params["event"]
        body = await request.body()
        try:
            data = json.loads(body) if body else None
        except json.JSONDecodeError as err:
            return JSONResponse(
                {
                    "error": "invalid_input",
                    "message": f"the event body is not JSON ({err.msg}); send a JSON value",
                },
                status_code=400,
            )
        if await asyncio.to_thread(client.get_orchestration_state, instance_id) is None:
            return _not_found(instance_id)
        await asyncio.to_thread(client.raise_orchestration_event, instance_id, event, data=data)
        return Response(status_code=202)

    async def terminate(request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        reason = request.query_params.get("reason", "")
        if await asyncio.to_thread(client.get_orchestration_state, instance_id) is None:
            return _not_found(instance_id)
        await asyncio.to_thread(client.terminate_orchestration, instance_id, output=reason)
        return Response(status_code=202)

    return [
        Route(INSTANCES_PATH + "/{instance_id}", get_status, methods=["GET"]),
        Route(INSTANCES_PATH + "/{instance_id}/raiseEvent/{event}", raise_event, methods=["POST"]),
        Route(INSTANCES_PATH + "/{instance_id}/terminate", terminate, methods=["POST"]),
    ]
