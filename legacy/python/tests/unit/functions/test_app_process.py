"""The composition root as the Functions worker loads it: a fresh process per environment.

OpenTelemetry's providers and the blueprint's app settings are fixed when ``function_app`` is
first imported, once per process, so each case imports it in its own interpreter: the result
never depends on which test (or which setup) ran first in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lepton.shared.settings import METRICS_RETENTION_SCHEDULE
from lepton.shared.telemetry import APPINSIGHTS_SETTING
from tests.conftest import PROJECT_ROOT

_PROBE = """
import json, os, sys
import function_app
from opentelemetry import trace
from lepton.shared import rollout
from lepton.functions.retention import METRICS_RETENTION_TIMER
from lepton.shared import telemetry
from lepton.shared.lifecycle import Stage
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

configured = telemetry.configure_telemetry(telemetry.TelemetrySettings("asked-later"))
provider = trace.get_tracer_provider()
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))


class Registry:  # only what rollout.transition calls; the span is what is under test
    def transition(self, model, version, to, **kwargs):
        return None


rollout.transition(
    Registry(), "digits", "1.2.0", Stage.CANARY, expected_from=Stage.EVALUATING, reason="r"
)
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
[timer] = functions[METRICS_RETENTION_TIMER].get_bindings_dict()["bindings"]
exporters = [
    type(getattr(p, "span_exporter", None)).__name__
    for p in provider._active_span_processor._span_processors
]
print(json.dumps({
    "service": provider.resource.attributes["service.name"],
    "global_is_configured": provider is configured.tracer_provider,
    "azure_monitor": configured.exporting_to_azure_monitor,
    "exporters": exporters,
    "spans": [dict(s.attributes) for s in memory.get_finished_spans()],
    "schedule": timer["schedule"],
}))
sys.stdout.flush()
# Skip the exporters' flush at exit: there is no Application Insights behind the fake endpoint.
os._exit(0)
"""


def _probe(tmp_path: Path, **env: str) -> dict[str, Any]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in (APPINSIGHTS_SETTING, METRICS_RETENTION_SCHEDULE)
    }
    # Contain the Azure Monitor exporter: no statsbeat, offline storage under tmp_path.
    clean |= {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=PROJECT_ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_app_insights_the_app_traces_locally_and_exports_nothing(tmp_path: Path) -> None:
    result = _probe(tmp_path)
    assert result["service"] == "lepton-functions"  # function_app configured it, not the probe
    assert result["global_is_configured"] is True
    assert result["azure_monitor"] is False
    assert result["exporters"] == ["InMemorySpanExporter"]
    assert result["spans"] == [
        {
            "lepton.model": "digits",
            "lepton.version": "1.2.0",
            "lepton.from_stage": "evaluating",
            "lepton.to_stage": "canary",
            "lepton.reason": "r",
        }
    ]
    assert result["schedule"] == "0 0 * * * *"  # default: hourly


def test_with_app_insights_spans_go_to_the_azure_monitor_exporter(tmp_path: Path) -> None:
    result = _probe(
        tmp_path,
        **{
            APPINSIGHTS_SETTING: "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            "IngestionEndpoint=http://127.0.0.1:9/",
            METRICS_RETENTION_SCHEDULE: "0 30 2 * * *",
        },
    )
    assert result["azure_monitor"] is True
    assert result["exporters"] == ["AzureMonitorTraceExporter", "InMemorySpanExporter"]
    assert [s["lepton.version"] for s in result["spans"]] == ["1.2.0"]
    assert result["schedule"] == "0 30 2 * * *"  # the app setting reaches the timer binding
