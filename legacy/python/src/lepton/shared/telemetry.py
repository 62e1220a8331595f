"""OpenTelemetry setup for every Lepton process.

Tracer and meter providers are always installed (spans and metrics are cheap and tests can read
them); the Azure Monitor exporter is added only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is
set, so local runs and tests need no Azure and raise no error. OpenTelemetry allows one global
provider per process and ignores a second one, so a provider someone else installed first (a
host's own OpenTelemetry setup, a test) is adopted rather than shadowed by one no span reaches.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

APPINSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_configured: Telemetry | None = None


@dataclass(frozen=True)
class TelemetrySettings:
    service_name: str
    connection_string: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, service_name: str, env: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if env is None else env
        return cls(service_name, env.get(APPINSIGHTS_SETTING, "").strip() or None)


@dataclass(frozen=True)
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting_to_azure_monitor: bool


def configure_telemetry(settings: TelemetrySettings) -> Telemetry:
    """Install global providers once per process; later calls return the first configuration."""
    global _configured  # noqa: PLW0603 - one set of OpenTelemetry providers per process
    with _lock:
        if _configured is not None:
            return _configured
        resource = Resource.create({"service.name": settings.service_name})
        installed_tracer = trace.get_tracer_provider()
        installed_meter = metrics.get_meter_provider()
        tracer_provider = (
            installed_tracer
            if isinstance(installed_tracer, TracerProvider)
            else TracerProvider(resource=resource)
        )
        # Readers are fixed when a meter provider is built: an installed one keeps its own.
        adopt_meter = isinstance(installed_meter, MeterProvider)
        readers: list[MetricReader] = []
        if settings.connection_string:
            from azure.monitor.opentelemetry.exporter import (
                AzureMonitorMetricExporter,
                AzureMonitorTraceExporter,
            )

            tracer_provider.add_span_processor(
                BatchSpanProcessor(
                    AzureMonitorTraceExporter(connection_string=settings.connection_string)
                )
            )
            if adopt_meter:
                _log.warning(
                    "a meter provider was installed before Lepton's telemetry: Lepton's metrics "
                    "reach its readers, not the Azure Monitor exporter"
                )
            else:
                readers.append(
                    PeriodicExportingMetricReader(
                        AzureMonitorMetricExporter(connection_string=settings.connection_string)
                    )
                )
        if isinstance(installed_meter, MeterProvider):
            meter_provider = installed_meter
        else:
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            metrics.set_meter_provider(meter_provider)
        if tracer_provider is not installed_tracer:
            trace.set_tracer_provider(tracer_provider)
        _configured = Telemetry(tracer_provider, meter_provider, bool(settings.connection_string))
        return _configured


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)
