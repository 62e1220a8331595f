"""The HTTP face of the worker: Open Inference Protocol v2 routes over Starlette.

Handlers are thin: read the body within the size limit, decode it (:mod:`.protocol`), call
:meth:`WorkerRuntime.infer`, encode the answer. Errors map to HTTP in one place
(:func:`_error_response`): every :class:`LeptonError` carries its status; 503s carry
``Retry-After``. Every response names the version that served it (``x-lepton-version``) and echoes
``x-request-id`` (or a generated one). Starlette is used without pydantic on the hot path: request
bodies are parsed once with orjson straight into numpy.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence

import orjson
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lepton.gpuworker.errors import ModelNotReady
from lepton.gpuworker.pool import SlotState
from lepton.gpuworker.protocol import (
    HEADER_LENGTH,
    decode_request,
    encode_response,
    error_body,
    parse_header_length,
)
from lepton.gpuworker.providers import choose_provider
from lepton.gpuworker.runtime import WorkerRuntime
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import LeptonError, ModelNotFound, PayloadTooLarge
from lepton.shared.metrics import MetricsStore
from lepton.shared.model_store import BlobModelStore
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import ModelStoreSettings, StorageSettings
from lepton.shared.storage import blob_service, table_service
from lepton.shared.telemetry import TelemetrySettings
from lepton.shared.workers import WorkerDirectory

log = logging.getLogger("lepton.gpuworker")
_JSON = "application/json"
_JSON_BYTES = _JSON.encode("latin-1")
_SERVER_NAME = "lepton-gpuworker"
_SERVER_VERSION = "0.1.0"
_ids = random.Random()


def _new_request_id() -> str:
    # A random 128-bit hex id: as unique as uuid4 for tracing, without a syscall per request.
    return f"{_ids.getrandbits(128):032x}"


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or _new_request_id()


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type=_JSON)


def _error_response(err: Exception, request_id: str, version: str | None = None) -> Response:
    headers = {"x-request-id": request_id}
    if version:
        headers["x-lepton-version"] = version
    if isinstance(err, ClientDisconnect):
        # The caller went away mid-body: nobody reads this answer, and it is not a server error.
        status, code, message = 400, "client_disconnected", "the client disconnected"
    elif isinstance(err, LeptonError):
        status, code, message = err.status_code, err.code, str(err)
        if isinstance(err, ModelNotReady):
            headers["retry-after"] = str(err.retry_after_s)
    else:
        log.exception("unexpected error", exc_info=err)
        status, code, message = 500, "internal", f"internal error: {err}"
    return Response(error_body(message, code), status, headers=headers, media_type=_JSON)


def _noted_version(err: Exception) -> str | None:
    for note in getattr(err, "__notes__", ()):
        if note.startswith("x-lepton-version: "):
            return str(note.removeprefix("x-lepton-version: "))
    return None


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    too_large = PayloadTooLarge(
        f"request body is larger than {limit} bytes (LEPTON_WORKER_MAX_BODY_BYTES); send fewer "
        "rows per request or use the binary tensor extension"
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    # Straight from the ASGI receive channel: cheaper than Starlette's stream() generator, and a
    # chunked body without Content-Length is still cut off at the limit.
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Headers:
    """Request headers looked up like Starlette's ``Headers.get`` (first occurrence wins).

    Built once per request from the ASGI scope (names arrive lower-cased), so each lookup is a
    dict hit instead of a scan of the header list with a fresh lower-case key.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw: dict[bytes, bytes] = {}
        for name, value in raw:
            self._raw.setdefault(name, value)

    def get(self, name: str) -> str | None:
        value = self._raw.get(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")


class _InferEndpoint:
    """The two infer routes as a raw ASGI app: they carry nearly all traffic.

    Starlette's ``Request``, its per-request exception-handling wrapper and the ``Response``
    object cost more than the rest of a small request's HTTP handling; this sends the same status,
    headers (in Starlette's order: ours, then content-length, then content-type) and body
    itself. Errors go through the ordinary :func:`_error_response`. Starlette's router still
    matches the path, fills ``path_params`` and answers 405 for other methods.
    """

    def __init__(self, runtime: WorkerRuntime) -> None:
        self._runtime = runtime
        self._max_body = runtime.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self._runtime
        headers = _Headers(scope["headers"])
        request_id = headers.get("x-request-id") or _new_request_id()
        params = scope["path_params"]
        model: str = params["model"]
        pinned: str | None = params.get("version")
        failed: Response | None = None
        runtime.in_flight += 1
        try:
            body = await _read_body(receive, headers.get("content-length"), self._max_body)
            header_length = parse_header_length(headers.get(HEADER_LENGTH), len(body))
            decoded = decode_request(body, header_length)
            sticky = None
            table = runtime.tables.get(model)
            if table is not None and table.sticky_header:
                sticky = headers.get(table.sticky_header)
            outcome = await runtime.infer(model, pinned, decoded, sticky)
        except Exception as err:
            failed = _error_response(err, request_id, _noted_version(err) or pinned)
        finally:
            runtime.in_flight -= 1
        if failed is not None:
            await failed(scope, receive, send)
            return
        payload, json_length = encode_response(
            model=model,
            version=outcome.version,
            request_id=decoded.id or request_id,
            outputs=outcome.result.outputs,
            order=outcome.order,
            requested=decoded.outputs,
            binary_output=decoded.binary_output,
        )
        raw_headers = [
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-lepton-version", outcome.version.encode("latin-1")),
        ]
        if json_length is None:
            content_type = _JSON_BYTES
        else:
            raw_headers.append((b"inference-header-content-length", b"%d" % json_length))
            content_type = b"application/octet-stream"
        raw_headers.append((b"content-length", b"%d" % len(payload)))
        raw_headers.append((b"content-type", content_type))
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})
        if outcome.mirror is not None:
            # After the response is sent (as a Starlette background task would): the shadow
            # starts then, so mirroring never adds to the caller's latency.
            await outcome.mirror()


def build_app(runtime: WorkerRuntime) -> Starlette:
    """The Starlette app over an already constructed runtime (started by the app's lifespan)."""

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        if runtime.ready:
            return _json({"ready": True})
        reason = "draining" if runtime.draining else "first sync with the registry pending"
        return _json({"ready": False, "reason": reason}, 503, {"retry-after": "1"})

    async def server_metadata(request: Request) -> Response:
        return _json(
            {
                "name": _SERVER_NAME,
                "version": _SERVER_VERSION,
                "extensions": ["binary_tensor_data"],
                "replica": runtime.replica,
                "provider": runtime.choice.name,
                "provider_reason": runtime.choice.reason,
            }
        )

    def _version_or_default(model: str, version: str | None) -> str:
        if version is not None:
            return version
        table = runtime.tables.get(model)
        if table is None:
            raise ModelNotFound(f"model {model!r} is not served by this worker")
        if table.production is None:
            raise ModelNotReady(f"model {model!r} has no ready version yet; retry shortly")
        return table.production

    async def model_metadata(request: Request) -> Response:
        request_id = _request_id(request)
        model = request.path_params["model"]
        try:
            version = _version_or_default(model, request.path_params.get("version"))
            served = runtime.pool.get_ready(model, version)
            if served is None:
                raise await runtime.not_ready_error(model, version)
        except Exception as err:
            return _error_response(err, request_id)
        table = runtime.tables.get(model)
        body = {
            "name": model,
            "versions": list(runtime.pool.versions(SlotState.READY).get(model, ())),
            "platform": "onnxruntime_onnx",
            "inputs": [t.to_json() for t in served.onnx.inputs],
            "outputs": [t.to_json() for t in served.onnx.outputs],
            "parameters": {
                "version": version,
                "provider": runtime.choice.name,
                "max_batch_size": served.onnx.max_batch_size,
                "max_delay_ms": served.batcher.max_delay_s * 1000.0,
                "footprint_bytes": served.footprint,
                "routes": None
                if table is None
                else {
                    "production": table.production,
                    "candidate": table.candidate,
                    "candidate_weight_bp": table.candidate_weight_bp,
                    "shadow": table.shadow,
                    "shadow_fraction_bp": table.shadow_fraction_bp,
                    "sticky_header": table.sticky_header,
                    "generation": table.generation,
                },
            },
        }
        return _json(body, headers={"x-request-id": request_id, "x-lepton-version": version})

    async def model_ready(request: Request) -> Response:
        request_id = _request_id(request)
        model = request.path_params["model"]
        try:
            version = _version_or_default(model, request.path_params.get("version"))
            if runtime.pool.get_ready(model, version) is None:
                raise await runtime.not_ready_error(model, version)
        except Exception as err:
            return _error_response(err, request_id)
        return _json(
            {"name": model, "version": version, "ready": True},
            headers={"x-request-id": request_id, "x-lepton-version": version},
        )

    async def metrics(request: Request) -> Response:
        return Response(
            runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    infer = _InferEndpoint(runtime)
    # Inference routes first: Starlette matches in order and they carry nearly all traffic.
    routes = [
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def create_app(
    settings: WorkerSettings,
    storage: StorageSettings | None = None,
    store_settings: ModelStoreSettings | None = None,
    *,
    available_providers: Sequence[str] | None = None,
    cuda_devices: Callable[[], int] | None = None,
) -> Starlette:
    """A ready-to-serve ASGI app; storage settings default to the environment's."""
    storage = storage or StorageSettings.from_env()
    store_settings = store_settings or ModelStoreSettings.from_env()
    tables: TableServiceClient = table_service(storage)
    blobs: BlobServiceClient = blob_service(storage)
    runtime = WorkerRuntime(
        settings,
        registry=TableRegistry(tables),
        store=BlobModelStore(blobs, store_settings),
        metrics_store=MetricsStore(tables),
        directory=WorkerDirectory(tables),
        choice=choose_provider(settings, available_providers, cuda_devices),
        opentelemetry=TelemetrySettings.from_env("lepton-gpuworker").connection_string is not None,
    )
    return build_app(runtime)
