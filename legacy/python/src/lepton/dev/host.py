"""A local Functions host: serves the app's HTTP routes and blob webhook over starlette, and runs
its timer functions.

It hosts the Functions app's own handlers rather than copying their logic: each ``ROUTES`` entry
becomes ``/api/<route>`` and every request is converted to ``azure.functions.HttpRequest`` (route
parameters included) and the handler's ``HttpResponse`` back, as the Functions host does. The Event
Grid blob webhook (``POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>``) answers the
subscription-validation handshake and hands each ``BlobCreated`` event to the registered blob
trigger. Keys are not checked locally, as with Core Tools. :class:`TimerRunner` runs the app's
timer functions on a fixed interval (the Functions host's NCRONTAB schedules are not evaluated
here: the app's timers are idempotent housekeeping, not time-of-day jobs).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import azure.functions as func
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lepton.dev.eventgrid import (
    WEBHOOK_PATH,
    BlobCreated,
    blob_created,
    function_key,
    parse_events,
    validation_code,
)
from lepton.dev.logs import part_logger
from lepton.shared.errors import InvalidInput, LeptonError

_log = part_logger("api")
_timer_log = part_logger("timers")

HttpHandler = Callable[[func.HttpRequest, Any], Awaitable[func.HttpResponse]]
BlobTrigger = Callable[[BlobCreated], Awaitable[None]]

# Functions route templates allow constraints ({id:int}) and optional parameters ({id?}).
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::[^}]*)?\}")


class RouteSpec(Protocol):
    """What the host needs of one entry of ``lepton.functions.http_api.ROUTES``."""

    @property
    def name(self) -> str: ...

    @property
    def methods(self) -> Sequence[str]: ...

    @property
    def route(self) -> str: ...

    @property
    def handler(self) -> HttpHandler: ...


def starlette_paths(template: str) -> list[str]:
    """``models/{model}/versions/{version?}`` → starlette paths under /api (one per optional)."""
    optional = [m.group(1) for m in _PARAM_RE.finditer(template) if m.group(2)]
    paths = ["/api/" + _PARAM_RE.sub(lambda m: "{" + m.group(1) + "}", template).strip("/")]
    if optional:
        # Functions drops a trailing optional segment entirely; so do we.
        shorter = template
        for name in reversed(optional):
            shorter = re.sub(r"/?\{" + name + r"\?(?::[^}]*)?\}", "", shorter)
        paths.append("/api/" + _PARAM_RE.sub(lambda m: "{" + m.group(1) + "}", shorter).strip("/"))
    return paths


async def to_func_request(request: Request) -> func.HttpRequest:
    body = await request.body()
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params={k: str(v) for k, v in request.path_params.items()},
        body=body,
    )


def from_func_response(response: func.HttpResponse) -> Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if not any(k.lower() == "content-type" for k in headers) and response.mimetype:
        charset = f"; charset={response.charset}" if response.charset else ""
        headers["content-type"] = f"{response.mimetype}{charset}"
    return Response(response.get_body(), status_code=response.status_code, headers=headers)


def _error(err: LeptonError) -> JSONResponse:
    return JSONResponse({"error": err.code, "message": str(err)}, status_code=err.status_code)


def http_routes(specs: Sequence[RouteSpec], client: Any) -> list[BaseRoute]:
    """Starlette routes that call each spec's handler with the converted request and ``client``."""
    out: list[BaseRoute] = []
    for spec in specs:
        handler = spec.handler

        async def endpoint(request: Request, handler: HttpHandler = handler) -> Response:
            try:
                response = await handler(await to_func_request(request), client)
            except LeptonError as err:
                # The app maps its errors itself; this only catches what escaped it.
                return _error(err)
            return from_func_response(response)

        for path in starlette_paths(spec.route):
            out.append(
                Route(
                    path,
                    endpoint,
                    methods=[m.upper() for m in spec.methods],
                    name=f"{spec.name}:{path}",
                )
            )
    return out


def blob_webhook_route(triggers: Mapping[str, BlobTrigger]) -> Route:
    """The Event Grid blob webhook, dispatching by ``functionName=Host.Functions.<name>``."""
    by_key = {function_key(name): trigger for name, trigger in triggers.items()}

    async def webhook(request: Request) -> Response:
        key = request.query_params.get("functionName", "")
        trigger = by_key.get(key)
        if trigger is None:
            known = ", ".join(sorted(by_key)) or "none"
            return JSONResponse(
                {
                    "error": "not_found",
                    "message": f"no blob trigger function {key!r}; known: {known}",
                },
                status_code=404,
            )
        try:
            events = parse_events(await request.body())
            code = validation_code(events)
            if code is not None:
                return JSONResponse({"validationResponse": code})
            blobs = [b for b in (blob_created(e) for e in events) if b is not None]
        except InvalidInput as err:
            return _error(err)
        for blob in blobs:
            _log.info("BlobCreated %s/%s → %s", blob.container, blob.blob_name, key)
            try:
                await trigger(blob)
            except LeptonError as err:
                # A bad upload (wrong path, invalid name) is the uploader's problem: acknowledge it
                # so Event Grid does not retry forever; the lifecycle recorded what it could.
                _log.warning("blob trigger refused %s: %s", blob.blob_name, err)
                if err.status_code >= 500:
                    return _error(err)
        return Response(status_code=202)

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])


def build_host_app(
    *,
    specs: Sequence[RouteSpec],
    client: Any,
    blob_triggers: Mapping[str, BlobTrigger],
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The whole local host: ``/api`` routes, the blob webhook and any extra (durable) routes."""

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes: list[BaseRoute] = [
        *http_routes(specs, client),
        blob_webhook_route(blob_triggers),
        *extra_routes,
        Route("/admin/host/status", health, methods=["GET"]),
    ]
    return Starlette(routes=routes)


@dataclass(frozen=True)
class TimerSpec:
    """A timer function as the local host runs it: once at start, then every ``interval_s``."""

    run: Callable[[Any], object]  # gets the app's services, like the Functions binding does
    interval_s: float


class TimerRunner:
    """Runs timer functions on one background thread until :meth:`stop`.

    Each runs once at start (a stack started after a long pause catches up at once) and then
    every interval after its last run ended. A failing run is logged and the next one is still
    on time, as on the Functions host.
    """

    def __init__(self, timers: Mapping[str, TimerSpec], services: Any) -> None:
        self._timers = dict(timers)
        self._services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)

    def start(self) -> TimerRunner:
        if self._timers:
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        due = dict.fromkeys(self._timers, time.monotonic())
        while not self._stop.is_set():
            for name, spec in self._timers.items():
                if self._stop.is_set() or due[name] > time.monotonic():
                    continue
                try:
                    spec.run(self._services)
                except Exception:
                    _timer_log.exception("timer %s failed; next run in %gs", name, spec.interval_s)
                due[name] = time.monotonic() + spec.interval_s
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))
