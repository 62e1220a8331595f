"""The Durable Functions blueprint: lifecycle orchestrator, activities, HTTP routes, blob trigger
and the metric-retention timer.

Registration only: every function here adapts a binding to code elsewhere (the orchestrator body,
the :data:`~lepton.functions.activities.ACTIVITIES` table, the :data:`~lepton.functions.http_api.
ROUTES` table, :func:`~lepton.functions.blob_trigger.handle_model_blob`,
:func:`~lepton.functions.retention.expire_metric_rollups`). Annotations are set as real types (not
strings) because the Functions worker reads them to pick binding converters.
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from lepton.functions import names
from lepton.functions.activities import ACTIVITIES, Activity
from lepton.functions.adapter_azure import azure_orchestrator
from lepton.functions.blob_trigger import handle_model_blob
from lepton.functions.client import AzureLifecycleClient
from lepton.functions.http_api import ROUTES, Route
from lepton.functions.orchestrator import lifecycle
from lepton.functions.retention import METRICS_RETENTION_TIMER, expire_metric_rollups
from lepton.functions.services import get_services
from lepton.shared.settings import MetricsRetentionSettings

bp = df.Blueprint()

_lifecycle = azure_orchestrator(lifecycle)
_lifecycle.__name__ = names.LIFECYCLE_ORCHESTRATOR
_lifecycle.__annotations__ = {"context": df.DurableOrchestrationContext}
bp.function_name(names.LIFECYCLE_ORCHESTRATOR)(
    bp.orchestration_trigger(context_name="context", orchestration=names.LIFECYCLE_ORCHESTRATOR)(
        _lifecycle
    )
)


def _register_activity(name: str, activity: Activity) -> None:
    def run(payload: Any) -> str:
        data = json.loads(payload) if isinstance(payload, str) else payload
        return json.dumps(activity(get_services(), data))

    run.__name__ = name
    run.__annotations__ = {"payload": str, "return": str}
    bp.function_name(name)(bp.activity_trigger(input_name="payload", activity=name)(run))


for _name, _activity in ACTIVITIES.items():
    _register_activity(_name, _activity)


def _register_route(route: Route) -> None:
    async def http(req: func.HttpRequest, client: Any) -> func.HttpResponse:
        return await route.handler(req, AzureLifecycleClient(client))

    http.__name__ = route.name
    http.__annotations__ = {"req": func.HttpRequest, "client": str, "return": func.HttpResponse}
    level = func.AuthLevel.ANONYMOUS if route.auth == "anonymous" else func.AuthLevel.FUNCTION
    fb = bp.durable_client_input(client_name="client")(http)
    fb = bp.route(route=route.route, methods=list(route.methods), auth_level=level)(fb)
    bp.function_name(route.name)(fb)


for _route in ROUTES:
    _register_route(_route)


async def model_blob(blob: func.InputStream, client: Any) -> None:
    await handle_model_blob(blob.name or "", AzureLifecycleClient(client))


model_blob.__annotations__ = {"blob": func.InputStream, "client": str, "return": None}
bp.function_name("model_blob")(
    bp.blob_trigger(
        arg_name="blob",
        path="models/{model}/{version}/model.onnx",
        connection="AzureWebJobsStorage",
        source=func.BlobSource.EVENT_GRID,
    )(bp.durable_client_input(client_name="client")(model_blob))
)


# Read at import: the worker indexes functions when it loads this module, so the schedule must be
# known then (a bad value fails the app's start with the setting's name, not a silent default).
_retention = MetricsRetentionSettings.from_env()


def metrics_retention(timer: func.TimerRequest) -> None:
    expire_metric_rollups(get_services(), _retention)


metrics_retention.__annotations__ = {"timer": func.TimerRequest, "return": None}
bp.function_name(METRICS_RETENTION_TIMER)(
    bp.timer_trigger(arg_name="timer", schedule=_retention.schedule)(metrics_retention)
)
