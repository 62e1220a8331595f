"""The benchmark's worker process: ``lepton.gpuworker`` exactly as deployed, plus a no-op route.

The no-op route (``POST /noop``) reads the body and returns a constant small JSON answer through
the same uvicorn/Starlette stack, so "served ÷ no-op" isolates what Lepton adds per request.
"""

from __future__ import annotations

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from lepton.gpuworker import WorkerSettings, create_app

_NOOP = orjson.dumps({"model_name": "noop", "model_version": "0.0.0", "outputs": []})


async def _noop(request: Request) -> Response:
    await request.body()
    return Response(_NOOP, media_type="application/json")


def main() -> None:
    settings = WorkerSettings.from_env()
    app = create_app(settings)
    app.add_route("/noop", _noop, methods=["POST"])
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
