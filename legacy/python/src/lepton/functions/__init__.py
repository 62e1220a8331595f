"""Lepton's control-plane bindings: the lifecycle orchestration, its activities, HTTP and blob.

Thin adapters over ``lepton.shared``. The Azure Functions app registers
:mod:`lepton.functions.blueprint` (see ``function_app.py``); the local stack uses
:func:`register_durabletask`, :func:`resume_active_lifecycles` and serves :data:`ROUTES` with a
:class:`DurableTaskLifecycleClient`; it runs :func:`expire_metric_rollups` on its own timer.
"""

from lepton.functions.blob_trigger import handle_model_blob
from lepton.functions.client import (
    AzureLifecycleClient,
    DurableTaskLifecycleClient,
    InstanceStatus,
    LifecycleClient,
    start_lifecycle,
    start_lifecycle_with_overrides,
)
from lepton.functions.http_api import ROUTES, Route
from lepton.functions.http_errors import error_response
from lepton.functions.instance import lifecycle_instance_id
from lepton.functions.local import register_durabletask, resume_active_lifecycles
from lepton.functions.orchestrator import LifecycleInput, lifecycle
from lepton.functions.retention import expire_metric_rollups
from lepton.functions.services import Services, configure_app_telemetry, get_services, set_services

__all__ = [
    "ROUTES",
    "AzureLifecycleClient",
    "DurableTaskLifecycleClient",
    "InstanceStatus",
    "LifecycleClient",
    "LifecycleInput",
    "Route",
    "Services",
    "configure_app_telemetry",
    "error_response",
    "expire_metric_rollups",
    "get_services",
    "handle_model_blob",
    "lifecycle",
    "lifecycle_instance_id",
    "register_durabletask",
    "resume_active_lifecycles",
    "set_services",
    "start_lifecycle",
    "start_lifecycle_with_overrides",
]
