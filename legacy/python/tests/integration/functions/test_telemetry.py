"""Lifecycle transitions reach the exporters of the telemetry the Functions app configures.

OpenTelemetry keeps one global tracer provider per process and Lepton configures it once, so this
test does not assume it runs first: it asks the app's setup for the process's provider (whoever
installed it) and attaches an in-memory exporter to that, exactly where an Azure Monitor exporter
sits in Azure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import azure.functions as func
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lepton.dev import sample_models
from lepton.functions.http_api import ROUTES
from lepton.functions.services import configure_app_telemetry
from lepton.shared.telemetry import APPINSIGHTS_SETTING
from tests.integration.functions.conftest import FAST, MODEL, Host, upload

pytestmark = pytest.mark.azurite


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.delenv(APPINSIGHTS_SETTING, raising=False)  # no Azure: the exporter stays off
    telemetry = configure_app_telemetry()
    # The app's spans go through the global provider; the setup returns exactly that one.
    assert trace.get_tracer_provider() is telemetry.tracer_provider
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays registered but exports nothing more


def test_every_lifecycle_transition_is_a_span_with_model_and_version(
    host: Host,
    digits_data: tuple[sample_models.Dataset, sample_models.Dataset],
    exported: InMemorySpanExporter,
) -> None:
    train, test = digits_data
    host.services.store.put_dataset(MODEL, "digits", test.x, test.y)
    upload(host.services, "1.0.0", sample_models.better_digits(train))
    route = next(r for r in ROUTES if r.name == "start_lifecycle")
    request = func.HttpRequest(
        "POST",
        f"http://127.0.0.1:7071/api/models/{MODEL}/versions/1.0.0/lifecycle",
        body=json.dumps({"policy": FAST}).encode(),
        route_params={"model": MODEL, "version": "1.0.0"},
    )
    response = asyncio.run(route.handler(request, host.client))
    assert host.wait_done(json.loads(response.get_body())["id"])["outcome"] == "production"

    spans = [
        s
        for s in exported.get_finished_spans()
        if s.name == "lepton.stage_transition" and (s.attributes or {}).get("lepton.model") == MODEL
    ]
    moves = [
        (
            (s.attributes or {})["lepton.version"],
            (s.attributes or {})["lepton.from_stage"],
            (s.attributes or {})["lepton.to_stage"],
        )
        for s in spans
    ]
    assert moves == [
        ("1.0.0", "registered", "validating"),
        ("1.0.0", "validating", "evaluating"),
        ("1.0.0", "evaluating", "production"),
    ]
