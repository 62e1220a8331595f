"""The templates declare the resources DESIGN.md section 7 asks for, with the properties that make
them safe: Entra-ID-only storage, a Flex Consumption Python app, local auth off for telemetry,
least-privilege roles for one managed identity, a serverless GPU profile and a probed worker.
"""

from __future__ import annotations

import re

import pytest

from lepton.shared.storage import CONTAINERS, TABLES
from tests.unit.infra._bicep import (
    BROAD_ROLES,
    DEV_PARAMETERS,
    MAIN_TEMPLATE,
    ROLE_ACR_PULL,
    ROLE_MONITORING_METRICS_PUBLISHER,
    ROLE_STORAGE_BLOB_DATA_OWNER,
    ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR,
    ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR,
    Template,
    decorator,
    function_calls,
    load_all,
    load_template,
    name_value_pairs,
    parse_template,
    unwrap,
)

STORAGE = "modules/storage.bicep"
FUNCTION_APP = "modules/functionApp.bicep"
ROLES = "modules/roles.bicep"
ENVIRONMENT = "modules/containerEnvironment.bicep"
WORKER = "modules/workerApp.bicep"

# What would put a storage key, a SAS or an instrumentation key into a template or its settings.
SECRET_PATTERNS = {
    "listKeys() call": re.compile(r"\blistKeys\b", re.IGNORECASE),
    "SAS token function": re.compile(r"\blist(Account|Service)Sas\b", re.IGNORECASE),
    "storage connection string": re.compile(r"AccountKey\s*=|DefaultEndpointsProtocol", re.I),
    "SAS query string": re.compile(r"SharedAccessSignature|[?&]sig=", re.IGNORECASE),
    "Log Analytics shared key": re.compile(r"\b(primary)?SharedKey\b\s*:", re.IGNORECASE),
    "instrumentation key": re.compile(r"InstrumentationKey", re.IGNORECASE),
}


def secret_findings(name: str, text: str) -> list[str]:
    return [
        f"{name}:{number}: {label}"
        for number, line in enumerate(text.splitlines(), start=1)
        for label, pattern in SECRET_PATTERNS.items()
        if pattern.search(line)
    ]


def role_assignments(roles: Template) -> dict[str, str]:
    """Role definition GUID -> symbolic name of the resource the assignment is scoped to."""
    assigned: dict[str, str] = {}
    for resource in roles.resources("Microsoft.Authorization/roleAssignments"):
        properties = resource.body["properties"]
        assert properties["principalType"] == "ServicePrincipal", resource.symbol
        assert properties["principalId"] == "principalId", resource.symbol
        [call] = function_calls(properties["roleDefinitionId"], "subscription_resource_id")
        assert call["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        # The GUID is a variable, or a loop item over a list of variables.
        role_names = (
            roles.variable(resource.loop_over) if resource.loop_over else [call["resource_name_1"]]
        )
        for role_name in role_names:
            assigned[roles.variable(role_name)] = resource.body["scope"]
    return assigned


def test_storage_account_accepts_entra_id_only_over_tls12() -> None:
    account = load_template(STORAGE).resource("Microsoft.Storage/storageAccounts").body
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["allowBlobPublicAccess"] is False
    assert properties["allowCrossTenantReplication"] is False


def test_storage_has_the_containers_and_tables_the_code_uses() -> None:
    storage = load_template(STORAGE)
    [containers] = [
        r
        for r in storage.resources("Microsoft.Storage/storageAccounts/blobServices/containers")
        if r.loop_over
    ]
    assert tuple(storage.variable(containers.loop_over or "")) == CONTAINERS
    assert containers.body["properties"]["publicAccess"] == "None"
    [tables] = storage.resources("Microsoft.Storage/storageAccounts/tableServices/tables")
    assert tuple(storage.variable(tables.loop_over or "")) == TABLES
    # And the Flex Consumption deployment package container, named by main.bicep.
    deployment = [
        r
        for r in storage.resources("Microsoft.Storage/storageAccounts/blobServices/containers")
        if not r.loop_over
    ]
    assert [r.body["name"] for r in deployment] == ["deploymentContainerName"]


def test_blob_versioning_and_soft_delete_protect_model_files() -> None:
    service = load_template(STORAGE).resource("Microsoft.Storage/storageAccounts/blobServices")
    properties = service.body["properties"]
    assert properties["isVersioningEnabled"] is True
    assert properties["deleteRetentionPolicy"]["enabled"] is True
    assert properties["containerDeleteRetentionPolicy"]["enabled"] is True


def test_event_grid_system_topic_watches_the_storage_account() -> None:
    topic = load_template(STORAGE).resource("Microsoft.EventGrid/systemTopics").body
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    source = topic["properties"]["source"]["operator"]["operands"]
    assert (source["operand_1"], source["operand_2"]) == ("storage", "id")


def test_function_app_is_flex_consumption_python_311() -> None:
    function_app = load_template(FUNCTION_APP)
    plan = function_app.resource("Microsoft.Web/serverfarms").body
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    site = function_app.resource("Microsoft.Web/sites").body
    assert site["kind"] == "functionapp,linux"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert {"maximumInstanceCount", "instanceMemoryMB"} <= set(config["scaleAndConcurrency"])


def test_function_app_deploys_from_blob_storage_with_the_managed_identity() -> None:
    site = load_template(FUNCTION_APP).resource("Microsoft.Web/sites").body
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_function_app_is_https_only_with_tls12_and_no_basic_auth_publishing() -> None:
    function_app = load_template(FUNCTION_APP)
    site = function_app.resource("Microsoft.Web/sites").body
    assert site["properties"]["httpsOnly"] is True
    site_config = site["properties"]["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["ftpsState"] == "Disabled"
    policies = function_app.resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p.body["name"]: p.body["properties"]["allow"] for p in policies} == {
        "ftp": False,
        "scm": False,
    }


def test_flex_consumption_settings_it_rejects_are_absent() -> None:
    site = load_template(FUNCTION_APP).resource("Microsoft.Web/sites").body
    names = set(name_value_pairs(site["properties"]["siteConfig"]["appSettings"]))
    # Flex takes these from functionAppConfig and fails the deployment if they are set.
    assert not names & {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    }


def test_telemetry_is_workspace_based_and_entra_id_only() -> None:
    monitoring = load_template("modules/monitoring.bicep")
    insights = monitoring.resource("Microsoft.Insights/components").body["properties"]
    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"]["operator"]["operands"]["operand_1"] == "workspace"
    workspace = monitoring.resource("Microsoft.OperationalInsights/workspaces").body
    assert workspace["properties"]["features"]["disableLocalAuth"] is True


@pytest.mark.parametrize("name", sorted(load_all()))
def test_no_keys_or_sas_in_templates(name: str) -> None:
    assert secret_findings(name, load_template(name).text) == []


def test_no_keys_or_sas_in_the_dev_parameters() -> None:
    assert secret_findings(DEV_PARAMETERS.name, DEV_PARAMETERS.read_text(encoding="utf-8")) == []


def test_secret_scan_catches_a_storage_key() -> None:
    text = (
        "var conn = 'DefaultEndpointsProtocol=https;AccountName=${name};"
        "AccountKey=${storage.listKeys().keys[0].value}'\n"
    )
    assert secret_findings("x.bicep", text) == [
        "x.bicep:1: listKeys() call",
        "x.bicep:1: storage connection string",
    ]


def test_one_user_assigned_identity_for_everything() -> None:
    templates = load_all()
    identities = [
        (name, resource.symbol)
        for name, template in templates.items()
        for resource in template.resources("Microsoft.ManagedIdentity/userAssignedIdentities")
    ]
    assert identities == [("modules/identity.bicep", "identity")]
    for name, type_ in (
        (FUNCTION_APP, "Microsoft.Web/sites"),
        (WORKER, "Microsoft.App/containerApps"),
    ):
        identity = templates[name].resource(type_).body["identity"]
        assert identity["type"] == "UserAssigned", name
        # pycep keeps the quotes of a quoted key: this is the key '${identityId}'.
        assert list(identity["userAssignedIdentities"]) == ["'${identityId}'"], name
    main = templates[MAIN_TEMPLATE]
    for module in ("functionApp", "worker"):
        params = unwrap(main.modules[module]["config"])[0]["params"]
        operands = params["identityId"]["operator"]["operands"]
        assert operands["operand_1"] == "identity", module


def test_role_assignments_are_least_privilege_and_resource_scoped() -> None:
    roles = load_template(ROLES)
    assert role_assignments(roles) == {
        ROLE_STORAGE_BLOB_DATA_OWNER: "storage",
        ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR: "storage",
        ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR: "storage",
        ROLE_MONITORING_METRICS_PUBLISHER: "appInsights",
        ROLE_ACR_PULL: "registry",
    }
    scopes = {r.symbol: r.type for r in roles.resources() if r.existing}
    assert scopes == {
        "storage": "Microsoft.Storage/storageAccounts",
        "appInsights": "Microsoft.Insights/components",
        "registry": "Microsoft.ContainerRegistry/registries",
    }


def test_broad_roles_are_never_assigned() -> None:
    for name, template in load_all().items():
        found = [role for guid, role in BROAD_ROLES.items() if guid in template.text.lower()]
        assert found == [], name


def test_role_check_sees_a_broad_role() -> None:
    roles = load_template(ROLES)
    broadened = parse_template(
        ROLES,
        roles.text.replace(ROLE_ACR_PULL, "b24988ac-6180-42a0-ab88-20f7382dd24c"),
    )
    assert "b24988ac-6180-42a0-ab88-20f7382dd24c" in role_assignments(broadened)
    assert ROLE_ACR_PULL not in role_assignments(broadened)


def test_container_environment_has_a_parameterised_serverless_gpu_profile() -> None:
    environment = load_template(ENVIRONMENT)
    body = environment.resource("Microsoft.App/managedEnvironments").body
    profiles = {p["name"]: p["workloadProfileType"] for p in body["properties"]["workloadProfiles"]}
    assert profiles == {"Consumption": "Consumption", "gpuProfileName": "gpuProfileType"}
    allowed = decorator(environment.parameters["gpuProfileType"], "allowed")
    assert allowed and all(str(t).startswith("Consumption-GPU-") for t in allowed)
    # Logs through a diagnostic setting: no Log Analytics shared key in the environment.
    assert body["properties"]["appLogsConfiguration"] == {"destination": "azure-monitor"}
    main = load_template(MAIN_TEMPLATE)
    assert decorator(main.parameters["gpuProfileType"], "allowed") == allowed


def test_worker_runs_on_the_gpu_profile_from_the_image_parameter() -> None:
    worker = load_template(WORKER).resource("Microsoft.App/containerApps").body["properties"]
    assert worker["workloadProfileName"] == "workloadProfileName"
    [container] = worker["template"]["containers"]
    assert container["image"] == "image"
    [registry] = worker["configuration"]["registries"]
    assert registry == {"server": "registryLoginServer", "identity": "identityId"}


def test_worker_probes_use_the_open_inference_health_routes() -> None:
    worker = load_template(WORKER).resource("Microsoft.App/containerApps").body["properties"]
    [container] = worker["template"]["containers"]
    probes = {p["type"]: p["httpGet"] for p in container["probes"]}
    assert probes == {
        "Startup": {"path": "/v2/health/live", "port": "port"},
        "Liveness": {"path": "/v2/health/live", "port": "port"},
        "Readiness": {"path": "/v2/health/ready", "port": "port"},
    }
    # Container Apps rejects probes outside these limits at deployment time.
    for probe in container["probes"]:
        assert 1 <= probe.get("failureThreshold", 3) <= 10, probe["type"]
        assert 0 <= probe.get("initialDelaySeconds", 0) <= 60, probe["type"]
        assert 1 <= probe.get("periodSeconds", 10) <= 240, probe["type"]


def test_worker_listens_on_every_interface_of_its_container() -> None:
    env = {e["name"]: e.get("value") for e in load_template(WORKER).variable("baseEnv")}
    # Ingress and the probes reach the pod's address; the loopback default would refuse them.
    assert env["LEPTON_WORKER_HOST"] == "0.0.0.0"
    assert env["LEPTON_WORKER_PORT"] is not None


def test_worker_scales_on_http_between_parameterised_bounds() -> None:
    worker = load_template(WORKER).resource("Microsoft.App/containerApps").body["properties"]
    scale = worker["template"]["scale"]
    assert (scale["minReplicas"], scale["maxReplicas"]) == ("minReplicas", "maxReplicas")
    [rule] = scale["rules"]
    assert "concurrentRequests" in rule["http"]["metadata"]


def test_worker_ingress_is_internal_unless_an_allowlist_is_given() -> None:
    template = load_template(WORKER)
    ingress = template.resource("Microsoft.App/containerApps").body["properties"]["configuration"]
    ingress = ingress["ingress"]
    assert ingress["allowInsecure"] is False
    assert ingress["external"] == "exposeOutsideEnvironment"
    external = template.variable("exposeOutsideEnvironment")["operator"]
    assert external["type"] == "not"
    assert function_calls(external, "empty") == [{"item_to_test": "allowedIpRanges"}]
    restrictions = ingress["ipSecurityRestrictions"]
    assert restrictions["loop_type"]["detail"]["array_name"] == "allowedIpRanges"
    assert restrictions["config"]["action"] == "Allow"
    assert template.parameters["allowedIpRanges"]["default"] == []


def test_main_outputs_the_endpoints() -> None:
    outputs = load_template(MAIN_TEMPLATE).outputs
    assert {
        "functionAppName",
        "functionAppUrl",
        "workerUrl",
        "blobEndpoint",
        "tableEndpoint",
        "registryLoginServer",
        "eventGridSystemTopicName",
        "identityClientId",
    } <= set(outputs)
