"""The Functions composition root, the error mapping and instance ids (no storage needed)."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import azure.functions as func
import function_app
import pytest

from lepton.functions import names
from lepton.functions.activities import ACTIVITIES
from lepton.functions.http_api import ROUTES
from lepton.functions.http_errors import error_response, mapped
from lepton.functions.instance import lifecycle_instance_id
from lepton.functions.retention import METRICS_RETENTION_TIMER
from lepton.shared.errors import (
    ConfigurationError,
    IllegalTransition,
    InvalidModelName,
    InvalidVersion,
)
from lepton.shared.settings import (
    METRICS_RETENTION_HOURS,
    METRICS_RETENTION_SCHEDULE,
    MetricsRetentionSettings,
)


@functools.cache
def app_functions() -> dict[str, Any]:
    """The app's functions by name (``get_functions`` validates once per app: call it once)."""
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def test_function_app_registers_every_route_activity_and_trigger() -> None:
    functions = app_functions()
    expected = {
        names.LIFECYCLE_ORCHESTRATOR,
        "model_blob",
        METRICS_RETENTION_TIMER,
        *names.ACTIVITY_NAMES,
        *(r.name for r in ROUTES),
    }
    assert set(functions) == expected
    assert set(ACTIVITIES) == set(names.ACTIVITY_NAMES)
    for route in ROUTES:
        bindings = functions[route.name].get_bindings_dict()["bindings"]
        trigger = next(b for b in bindings if b["type"] == "httpTrigger")
        assert trigger["route"] == route.route
        assert [str(m.value) for m in trigger["methods"]] == list(route.methods)
        assert trigger["authLevel"].value == route.auth
        assert any(b["type"] == "durableClient" for b in bindings)
    blob = functions["model_blob"].get_bindings_dict()["bindings"]
    trigger = next(b for b in blob if b["type"] == "blobTrigger")
    assert trigger["path"] == "models/{model}/{version}/model.onnx"
    assert trigger["source"] == "EventGrid" and trigger["connection"] == "AzureWebJobsStorage"


def test_the_retention_timer_is_registered_with_the_configured_schedule() -> None:
    [trigger] = app_functions()[METRICS_RETENTION_TIMER].get_bindings_dict()["bindings"]
    assert trigger["type"] == "timerTrigger" and trigger["name"] == "timer"
    # The process environment sets no schedule: the blueprint uses the default, hourly.
    assert trigger["schedule"] == MetricsRetentionSettings().schedule == "0 0 * * * *"


def test_retention_settings_default_read_and_refuse_bad_values() -> None:
    assert MetricsRetentionSettings.from_env({}) == MetricsRetentionSettings(168, "0 0 * * * *")
    read = MetricsRetentionSettings.from_env(
        {METRICS_RETENTION_HOURS: " 24 ", METRICS_RETENTION_SCHEDULE: "0  30 2 * * *"}
    )
    assert (read.retention_hours, read.retention_s, read.schedule) == (24, 86_400, "0 30 2 * * *")
    with pytest.raises(ConfigurationError, match="LEPTON_METRICS_RETENTION_HOURS must be a whole"):
        MetricsRetentionSettings.from_env({METRICS_RETENTION_HOURS: "1.5"})
    with pytest.raises(ConfigurationError, match="LEPTON_METRICS_RETENTION_HOURS must be at least"):
        MetricsRetentionSettings.from_env({METRICS_RETENTION_HOURS: "0"})
    # Five-field cron (no seconds) would be misread by the Functions host: refused by name.
    with pytest.raises(ConfigurationError, match="LEPTON_METRICS_RETENTION_SCHEDULE must be"):
        MetricsRetentionSettings.from_env({METRICS_RETENTION_SCHEDULE: "0 * * * *"})


def test_lepton_errors_map_to_their_status_and_code() -> None:
    response = error_response(IllegalTransition("cannot move a version from 'x' to 'y'"))
    assert response.status_code == 409
    assert json.loads(response.get_body()) == {
        "error": "illegal_transition",
        "message": "cannot move a version from 'x' to 'y'",
    }


def test_unexpected_errors_are_500_without_internals() -> None:
    @mapped
    async def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret connection string in a stack trace")

    request = func.HttpRequest("GET", "http://127.0.0.1/api/x", body=b"")
    response = asyncio.run(broken(request))
    assert response.status_code == 500
    assert b"secret" not in response.get_body()


def test_instance_id_depends_on_model_version_and_content() -> None:
    a = lifecycle_instance_id("digits", "1.0.0+build.7", "ab" * 32)
    assert a == "lepton-digits-1.0.0_build.7-abababababababab"
    assert a == lifecycle_instance_id("digits", "1.0.0+build.7", "ab" * 32)
    assert a != lifecycle_instance_id("digits", "1.0.0+build.7", "cd" * 32)
    with pytest.raises(InvalidModelName):
        lifecycle_instance_id("Digits", "1.0.0", "ab" * 32)
    with pytest.raises(InvalidVersion):
        lifecycle_instance_id("digits", "v1", "ab" * 32)
