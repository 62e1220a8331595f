"""A small Functions-style app for testing the local host's plumbing on real sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from lepton.dev.eventgrid import BlobCreated
from lepton.shared.errors import VersionNotFound


@dataclass(frozen=True)
class Spec:
    name: str
    methods: tuple[str, ...]
    route: str
    handler: Any


async def echo(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "header": req.headers.get("x-test"),
        "body": req.get_body().decode(),
        "client": client,
    }
    return func.HttpResponse(
        json.dumps(payload),
        status_code=201,
        mimetype="application/json",
        headers={"x-handled-by": "echo"},
    )


async def missing(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    raise VersionNotFound(f"no version {req.route_params['version']}")


SPECS = (
    Spec("echo", ("GET", "POST"), "things/{name}/items/{item?}", echo),
    Spec("missing", ("GET",), "models/{model}/versions/{version}", missing),
)


@dataclass
class Recorder:
    events: list[tuple[BlobCreated, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def __call__(self, event: BlobCreated, client: Any) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.events.append((event, client))
