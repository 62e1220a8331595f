"""The HTTP API under ``/api``: models, versions, lifecycle control, routes, history, health.

Handlers are plain ``async def handler(req, client) -> HttpResponse`` functions listed once in
:data:`ROUTES`; the Functions blueprint and the local host both serve exactly that table. Each
handler parses the request, calls the registry/model store (in a thread: the SDKs block) or the
lifecycle client, and lets errors reach :func:`~lepton.functions.http_errors.mapped`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import azure.functions as func

from lepton.functions import names
from lepton.functions.client import LifecycleClient, start_lifecycle_with_overrides
from lepton.functions.http_errors import json_response, mapped
from lepton.functions.services import Services, get_services
from lepton.shared.errors import Conflict, InvalidInput, InvalidRoutes, ModelNotFound
from lepton.shared.policy import resolve_policy

Handler = Callable[[func.HttpRequest, LifecycleClient], Awaitable[func.HttpResponse]]
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Route:
    name: str
    methods: tuple[str, ...]
    route: str  # template without the /api prefix
    handler: Handler
    auth: Literal["function", "anonymous"] = "function"


def _body(req: func.HttpRequest) -> dict[str, Any]:
    raw = req.get_body() or b""
    if len(raw) > _MAX_BODY:
        raise InvalidInput(f"request body is larger than {_MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise InvalidInput(f"request body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string, got {value!r}")
    return value


def _param(req: func.HttpRequest, name: str) -> str:
    value: str | None = req.route_params.get(name)
    if not value:
        raise InvalidInput(f"missing route parameter {name!r}")
    return value


async def _io(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _services() -> Services:
    return get_services()


@mapped
async def health(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    return json_response({"status": "ok"})


@mapped
async def list_models(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    return json_response({"models": await _io(_services().registry.list_models)})


@mapped
async def model_detail(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    model = _param(req, "model")
    registry = _services().registry
    versions = await _io(registry.list_versions, model)
    if not versions:
        raise ModelNotFound(f"model {model!r} has no versions; upload one with `lepton push`")
    routes = await _io(registry.get_routes, model)
    return json_response(
        {
            "model": model,
            "versions": [
                {
                    "version": v.version,
                    "stage": v.stage.value,
                    "reason": v.reason,
                    "updated": v.updated.isoformat(),
                }
                for v in versions
            ],
            "routes": routes.to_json(),
        }
    )


@mapped
async def version_detail(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    model, version = _param(req, "model"), _param(req, "version")
    services = _services()
    record = await _io(services.registry.get_version, model, version)
    status = await client.status(record.instance_id) if record.instance_id else None
    reports = await _io(services.store.list_reports, model, version)
    return json_response(
        {
            "version": record.to_json(),
            "lifecycle": status.to_json() if status else None,
            "reports": reports,
        }
    )


@mapped
async def start(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    model, version = _param(req, "model"), _param(req, "version")
    body = _body(req)
    overrides = body.get("policy") or {}
    resolve_policy(overrides)  # refuse a bad override now, with a 400, not inside the run
    actor = _text(body, "actor", "api")
    services = _services()
    stored = await _io(services.store.stat_model, model, version)
    started = await start_lifecycle_with_overrides(
        client, services.registry, stored, overrides=overrides, actor=actor
    )
    return client.check_status_response(req, started.instance_id)


def _operator(action: str) -> Handler:
    @mapped
    async def handler(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
        model, version = _param(req, "model"), _param(req, "version")
        body = _body(req)
        record = await _io(_services().registry.get_version, model, version)
        status = await client.status(record.instance_id) if record.instance_id else None
        if status is None or status.runtime_status not in ("Running", "Pending"):
            state = status.runtime_status if status else "not started"
            raise Conflict(
                f"{model} {version} has no running lifecycle (it is {state}, stage "
                f"{record.stage.value!r}); {action} applies to a running rollout — change "
                "traffic with PUT /api/models/{model}/routes instead"
            )
        command = {
            "action": action,
            "actor": _text(body, "actor", "api"),
            "reason": _text(body, "reason", ""),
        }
        await client.raise_event(status.instance_id, names.OPERATOR_EVENT, command)
        return json_response({"instance_id": status.instance_id, "sent": command}, 202)

    handler.__name__ = action
    return handler


_ROUTE_KEYS = {
    "production",
    "candidate",
    "candidate_weight_bp",
    "shadow",
    "shadow_fraction_bp",
    "sticky_header",
    "reason",
    "actor",
}


@mapped
async def put_routes(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    model = _param(req, "model")
    body = _body(req)
    unknown = sorted(set(body) - _ROUTE_KEYS)
    if unknown:
        raise InvalidRoutes(f"unknown route field(s) {unknown}; allowed: {sorted(_ROUTE_KEYS)}")
    registry = _services().registry
    current = await _io(registry.get_routes, model)
    changes: dict[str, Any] = {}
    for key in ("production", "candidate", "shadow", "sticky_header"):
        if key in body:
            if body[key] is not None and not isinstance(body[key], str):
                raise InvalidRoutes(f"{key} must be a version string or null, got {body[key]!r}")
            changes[key] = body[key]
    for key in ("candidate_weight_bp", "shadow_fraction_bp"):
        if key in body:
            if isinstance(body[key], bool) or not isinstance(body[key], int):
                raise InvalidRoutes(f"{key} must be a whole number of basis points (0..10000)")
            changes[key] = body[key]
    stored = await _io(
        registry.set_routes,
        replace(current, **changes),
        actor=_text(body, "actor", "api"),
        reason=_text(body, "reason", "manual route change"),
    )
    return json_response(stored.to_json())


@mapped
async def history(req: func.HttpRequest, client: LifecycleClient) -> func.HttpResponse:
    model, version = _param(req, "model"), _param(req, "version")
    events = await _io(_services().registry.history, model, version)
    return json_response({"events": [e.to_json() for e in events]})


ROUTES: tuple[Route, ...] = (
    Route("health", ("GET",), "health", health, "anonymous"),
    Route("list_models", ("GET",), "models", list_models),
    Route("model_detail", ("GET",), "models/{model}", model_detail),
    Route("put_routes", ("PUT",), "models/{model}/routes", put_routes),
    Route("version_detail", ("GET",), "models/{model}/versions/{version}", version_detail),
    Route("start_lifecycle", ("POST",), "models/{model}/versions/{version}/lifecycle", start),
    Route("approve", ("POST",), "models/{model}/versions/{version}/approve", _operator("approve")),
    Route("promote", ("POST",), "models/{model}/versions/{version}/promote", _operator("promote")),
    Route(
        "rollback", ("POST",), "models/{model}/versions/{version}/rollback", _operator("rollback")
    ),
    Route("abort", ("POST",), "models/{model}/versions/{version}/abort", _operator("abort")),
    Route("version_history", ("GET",), "models/{model}/versions/{version}/history", history),
)
