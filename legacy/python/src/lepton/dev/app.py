"""What the local stack hosts: the Functions app's routes, blob trigger, timers, orchestrator and
activities, and its telemetry setup.

:class:`HostedApp` is the seam between the stack and the app. :func:`functions_app` builds it from
``lepton.functions`` (the same table of HTTP routes, the same blob trigger and timer handlers, the
same durable registrations and the same telemetry setup that ``function_app.py`` uses in Azure);
tests of the stack's own plumbing build a small one instead.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from lepton.dev.eventgrid import BlobCreated
from lepton.dev.host import RouteSpec, TimerSpec
from lepton.shared.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BlobHandler = Callable[[BlobCreated, Any], Awaitable[None]]
# How often the stack runs each timer function: hourly, the default schedule in Azure.
LOCAL_TIMER_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class HostedApp:
    specs: Sequence[RouteSpec]
    # The lifecycle client the handlers receive, built over the stack's durabletask client.
    make_client: Callable[[TaskHubGrpcClient], Any]
    # Blob-trigger functions by their Functions name; each gets the event and the client.
    blob_triggers: Mapping[str, BlobHandler]
    # Registers the orchestrator and activities on the durabletask worker.
    register: Callable[[TaskHubGrpcWorker, Any], None] = lambda worker, services: None
    # Resumes lifecycles of versions left in a non-terminal stage; returns what it resumed.
    resume: Callable[[Any, Any], Coroutine[Any, Any, Any]] | None = None
    # Builds the app's services from a storage connection string and a cache folder.
    make_services: Callable[[str, Any], Any] | None = None
    install_services: Callable[[Any], None] = field(default=lambda services: None)
    # Timer functions by their Functions name; the stack's host runs them periodically.
    timers: Mapping[str, TimerSpec] = field(default_factory=dict)
    # The app's OpenTelemetry setup, run before any part starts.
    configure_telemetry: Callable[[], object] = field(default=lambda: None)


def _attr(module: str, *names: str) -> Any:
    mod = importlib.import_module(module)
    for name in names:
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ConfigurationError(
        f"{module} has none of {list(names)}: the local stack and lepton.functions disagree; "
        "update lepton.dev.app"
    )


def _app_functions() -> list[Any]:
    root_app = PROJECT_ROOT / "function_app.py"
    if root_app.exists():
        spec = importlib.util.spec_from_file_location("function_app", root_app)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return list(module.app.get_functions())
    # Before function_app.py exists the blueprint alone defines the functions.
    from lepton.functions.blueprint import bp

    return [builder.build() for builder in bp._function_builders]


def _trigger_names(trigger_type: str, functions: list[Any] | None = None) -> list[str]:
    return [
        f.get_function_name()
        for f in (_app_functions() if functions is None else functions)
        if any(b.type == trigger_type for b in f.get_bindings())
    ]


def blob_trigger_names(functions: list[Any] | None = None) -> list[str]:
    """Functions names of the app's blob triggers (the webhook's ``functionName`` uses them)."""
    return _trigger_names("blobTrigger", functions)


def timer_trigger_names(functions: list[Any] | None = None) -> list[str]:
    """Functions names of the app's timer triggers (the stack must run every one of them)."""
    return _trigger_names("timerTrigger", functions)


def functions_app() -> HostedApp:
    """The real app from ``lepton.functions`` (imported here so the CLI starts fast)."""
    # Imported here, not at the top: the CLI's other commands never load the Functions app.
    from lepton.functions.client import DurableTaskLifecycleClient
    from lepton.functions.http_api import ROUTES
    from lepton.functions.retention import METRICS_RETENTION_TIMER, expire_metric_rollups
    from lepton.functions.services import Services, configure_app_telemetry, set_services
    from lepton.shared.settings import (
        MetricsRetentionSettings,
        ModelStoreSettings,
        StorageSettings,
    )

    handle = _attr("lepton.functions.blob_trigger", "handle_model_blob")
    register = _attr("lepton.functions.local", "register_durabletask")
    resume = _attr("lepton.functions.local", "resume_active_lifecycles")
    functions = _app_functions()
    names = blob_trigger_names(functions)
    if len(names) != 1:
        raise ConfigurationError(
            f"the Functions app registers {len(names)} blob triggers ({names}); the local stack "
            "hosts exactly one (models/)"
        )

    retention = MetricsRetentionSettings.from_env()
    timers = {
        METRICS_RETENTION_TIMER: TimerSpec(
            lambda services: expire_metric_rollups(services, retention), LOCAL_TIMER_INTERVAL_S
        )
    }
    app_timers = sorted(timer_trigger_names(functions))
    if app_timers != sorted(timers):
        raise ConfigurationError(
            f"the Functions app has timer functions {app_timers}, the local stack runs "
            f"{sorted(timers)}; update lepton.dev.app"
        )

    async def on_model_blob(event: BlobCreated, client: Any) -> None:
        await handle(f"{event.container}/{event.blob_name}", client)

    def make_services(connection: str, cache_dir: Any) -> Any:
        return Services.from_settings(
            StorageSettings(connection_string=connection),
            ModelStoreSettings(cache_dir=Path(cache_dir)),
        )

    return HostedApp(
        specs=ROUTES,
        make_client=DurableTaskLifecycleClient,
        blob_triggers={names[0]: on_model_blob},
        register=register,
        resume=resume,
        make_services=make_services,
        install_services=set_services,
        timers=timers,
        configure_telemetry=configure_app_telemetry,
    )
