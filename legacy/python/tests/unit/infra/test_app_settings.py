"""Every setting the code reads is set by the template, identity based, with no storage secret.

The Functions app reads ``lepton.shared.settings.APP_SETTING_NAMES`` (the host reads the same
``AzureWebJobsStorage__*`` names); the worker reads ``lepton.gpuworker.settings
.WORKER_SETTING_NAMES``. A setting the code reads but the template forgets fails here, not at
3 a.m. in Azure with a ConfigurationError.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from typing import Any

from lepton.shared.settings import APP_SETTING_NAMES, STORAGE_CONNECTION
from lepton.shared.telemetry import APPINSIGHTS_SETTING
from tests.unit.infra._bicep import (
    Template,
    function_calls,
    load_template,
    name_value_pairs,
    with_edit,
)

FUNCTION_APP = "modules/functionApp.bicep"
WORKER = "modules/workerApp.bicep"
WORKER_SETTINGS_MODULE = "lepton.gpuworker.settings"
# Read by libraries rather than by Lepton: the Azure Monitor exporter and the Functions host
# (Entra ID ingestion) and azure-identity (which user-assigned identity to use).
LIBRARY_SETTINGS = {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AZURE_CLIENT_ID"}
IDENTITY_SETTINGS = {
    f"{STORAGE_CONNECTION}__accountName": "storageAccountName",
    f"{STORAGE_CONNECTION}__credential": "managedidentity",
    f"{STORAGE_CONNECTION}__clientId": "identityClientId",
    f"{STORAGE_CONNECTION}__blobServiceUri": "blobEndpoint",
    f"{STORAGE_CONNECTION}__queueServiceUri": "queueEndpoint",
    f"{STORAGE_CONNECTION}__tableServiceUri": "tableEndpoint",
    APPINSIGHTS_SETTING: "appInsightsConnectionString",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=${identityClientId};Authorization=AAD",
}


def function_app_settings(template: Template) -> dict[str, Any]:
    site = template.resource("Microsoft.Web/sites").body
    return name_value_pairs(site["properties"]["siteConfig"]["appSettings"])


def worker_env(template: Template) -> dict[str, Any]:
    """The worker container's env: ``concat(baseEnv, extraEnv)`` with ``baseEnv`` resolved."""
    app = template.resource("Microsoft.App/containerApps").body
    [container] = app["properties"]["template"]["containers"]
    [call] = function_calls(container["env"], "concat")
    env: dict[str, Any] = {}
    for argument in call.values():
        if argument in template.variables:
            env |= name_value_pairs(template.variable(argument))
        else:  # the operator's extraEnv parameter: adds settings, cannot remove ours
            assert argument in template.parameters, f"unexpected env source {argument!r}"
    return env


def setting_problems(settings: Mapping[str, Any], required: Iterable[str]) -> list[str]:
    problems = [f"{name} is not set" for name in sorted(required) if name not in settings]
    # Identity-based access: the plain connection-string setting would carry an account key.
    if STORAGE_CONNECTION in settings:
        problems.append(f"{STORAGE_CONNECTION} is set: use the {STORAGE_CONNECTION}__* settings")
    for name, value in IDENTITY_SETTINGS.items():
        if name in settings and settings[name] != value:
            problems.append(f"{name} is {settings[name]!r}, expected {value!r}")
    return problems


def worker_setting_names() -> tuple[set[str], set[str]]:
    """(names the worker reads, names it cannot start without), from the worker's own module."""
    baseline = {name for name in IDENTITY_SETTINGS if name.startswith(STORAGE_CONNECTION)}
    baseline |= {"LEPTON_WORKER_PORT", APPINSIGHTS_SETTING}
    if importlib.util.find_spec(WORKER_SETTINGS_MODULE) is None:
        # The worker package has not landed yet: hold the template to the agreed baseline.
        return set(), baseline
    module = importlib.import_module(WORKER_SETTINGS_MODULE)
    names = getattr(module, "WORKER_SETTING_NAMES", None)
    assert names is not None, f"{WORKER_SETTINGS_MODULE} must export WORKER_SETTING_NAMES"
    required = set(getattr(module, "WORKER_REQUIRED_SETTING_NAMES", ())) | baseline
    return set(names), {name for name in required if name != STORAGE_CONNECTION}


def test_function_app_sets_every_setting_the_code_reads() -> None:
    required = set(APP_SETTING_NAMES) - {STORAGE_CONNECTION}
    assert setting_problems(function_app_settings(load_template(FUNCTION_APP)), required) == []


def test_function_app_sets_only_settings_something_reads() -> None:
    settings = set(function_app_settings(load_template(FUNCTION_APP)))
    assert settings - set(APP_SETTING_NAMES) - LIBRARY_SETTINGS == set()


def test_a_forgotten_function_app_setting_is_caught() -> None:
    template = with_edit(FUNCTION_APP, "'LEPTON_CACHE_DIR'", "'LEPTON_CACHE_DIRECTORY'")
    required = set(APP_SETTING_NAMES) - {STORAGE_CONNECTION}
    assert setting_problems(function_app_settings(template), required) == [
        "LEPTON_CACHE_DIR is not set"
    ]


def test_a_key_based_connection_or_wrong_credential_is_caught() -> None:
    settings = function_app_settings(load_template(FUNCTION_APP))
    settings |= {STORAGE_CONNECTION: "connection", f"{STORAGE_CONNECTION}__credential": "key"}
    assert setting_problems(settings, ()) == [
        f"{STORAGE_CONNECTION} is set: use the {STORAGE_CONNECTION}__* settings",
        f"{STORAGE_CONNECTION}__credential is 'key', expected 'managedidentity'",
    ]


def test_worker_sets_every_setting_it_needs() -> None:
    _, required = worker_setting_names()
    assert setting_problems(worker_env(load_template(WORKER)), required) == []


def test_worker_sets_only_settings_something_reads() -> None:
    reads, _ = worker_setting_names()
    known = reads | set(APP_SETTING_NAMES) | LIBRARY_SETTINGS | {"LEPTON_WORKER_PORT"}
    assert set(worker_env(load_template(WORKER))) - known == set()


def test_worker_port_setting_matches_ingress_and_probes() -> None:
    template = load_template(WORKER)
    [call] = function_calls(worker_env(template)["LEPTON_WORKER_PORT"], "string")
    assert call == {"value_to_convert": "port"}
    app = template.resource("Microsoft.App/containerApps").body["properties"]
    assert app["configuration"]["ingress"]["targetPort"] == "port"
    assert template.parameters["port"]["default"] == 8000


def test_a_forgotten_worker_setting_is_caught() -> None:
    template = with_edit(WORKER, "'LEPTON_WORKER_PORT'", "'LEPTON_PORT'")
    _, required = worker_setting_names()
    assert setting_problems(worker_env(template), required) == ["LEPTON_WORKER_PORT is not set"]
