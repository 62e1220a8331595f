using System.Text.Json.Nodes;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// The inference worker: a Container App on the environment's serverless GPU profile, pulling its
/// image as the identity, probed on the Open Inference Protocol health routes, internal unless an
/// allowlist is given, and authenticating callers with API keys from Key Vault or Entra ID tokens.
/// </summary>
public sealed class WorkerAppTests(Deployments deployments)
{
    private const string App = "Microsoft.App/containerApps";

    [Fact]
    public async Task No_worker_is_deployed_until_an_image_is_given()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        Assert.Empty(deployment.OfType(App));
        Assert.Single(deployment.OfType("Microsoft.App/managedEnvironments"));
    }

    [Fact]
    public async Task The_environment_has_a_serverless_GPU_profile_and_logs_without_a_key()
    {
        var environment = (await deployments.SnapshotAsync(Scenario.WorkerWithKeys)).Single("Microsoft.App/managedEnvironments");
        var profiles = environment.Objects("properties", "workloadProfiles").ToDictionary(p => p.Text("name"), p => p.Text("workloadProfileType"));
        Assert.Equal(new Dictionary<string, string> { ["Consumption"] = "Consumption", ["gpu"] = "Consumption-GPU-NC8as-T4" }, profiles);
        Assert.Equal("azure-monitor", environment.Text("properties", "appLogsConfiguration", "destination"));
        Assert.Null(environment.Find("properties", "appLogsConfiguration", "logAnalyticsConfiguration"));
    }

    [Fact]
    public async Task The_worker_runs_the_given_image_on_the_GPU_profile_pulled_as_the_identity()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var app = deployment.Single(App);
        var identity = deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id");
        Assert.Equal("gpu", app.Text("properties", "workloadProfileName"));
        Assert.Equal(deployment.Single("Microsoft.App/managedEnvironments").Text("id"), app.Text("properties", "environmentId"));
        var container = deployment.WorkerContainer();
        Assert.Equal("crleptontest.azurecr.io/lepton-worker:0123abc", container.Text("image"));
        Assert.Equal(8, container.Get("resources", "cpu").GetValue<int>());
        Assert.Equal("56Gi", container.Text("resources", "memory"));
        var registry = Assert.Single(app.Objects("properties", "configuration", "registries"));
        Assert.Equal(identity, registry.Text("identity"));
        Assert.Equal($"[reference('{deployment.Single("Microsoft.ContainerRegistry/registries").Text("id")}', '2025-04-01').loginServer]", registry.Text("server"));
        Assert.Null(registry.Find("passwordSecretRef"));
    }

    [Fact]
    public async Task The_probes_use_the_worker_health_routes_on_its_HTTP_port()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var container = deployment.WorkerContainer();
        var port = int.Parse(deployment.WorkerEnv()["LEPTON_WORKER_PORT"].Text("value"), System.Globalization.CultureInfo.InvariantCulture);
        var probes = container.Objects("probes").ToDictionary(p => p.Text("type"), p => p);
        Assert.Equal(["Liveness", "Readiness", "Startup"], probes.Keys.Order());
        Assert.Equal("/v2/health/live", probes["Startup"].Text("httpGet", "path"));
        Assert.Equal("/v2/health/live", probes["Liveness"].Text("httpGet", "path"));
        Assert.Equal("/v2/health/ready", probes["Readiness"].Text("httpGet", "path"));
        Assert.All(probes.Values, probe =>
        {
            Assert.Equal(port, probe.Get("httpGet", "port").GetValue<int>());
            // Container Apps refuses probes outside these limits at deployment.
            Assert.InRange(probe.Find("failureThreshold")?.GetValue<int>() ?? 3, 1, 10);
            Assert.InRange(probe.Find("initialDelaySeconds")?.GetValue<int>() ?? 0, 0, 60);
            Assert.InRange(probe.Find("periodSeconds")?.GetValue<int>() ?? 10, 1, 240);
        });
        Assert.Equal(port, deployment.Single(App).Get("properties", "configuration", "ingress", "targetPort").GetValue<int>());
    }

    [Fact]
    public async Task Ingress_is_internal_by_default_with_gRPC_inside_the_environment_only()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var ingress = deployment.Single(App).Get("properties", "configuration", "ingress");
        Assert.False(ingress.Get("external").GetValue<bool>());
        Assert.False(ingress.Get("allowInsecure").GetValue<bool>());
        Assert.Empty(ingress.Get("ipSecurityRestrictions").AsArray());
        var grpc = Assert.Single(ingress.Objects("additionalPortMappings"));
        Assert.False(grpc.Get("external").GetValue<bool>());
        Assert.Equal(deployment.WorkerEnv()["LEPTON_WORKER_GRPC_PORT"].Text("value"), grpc.Get("targetPort").ToJsonString());
    }

    [Fact]
    public async Task An_allowlist_opens_ingress_to_those_ranges_only()
    {
        var ingress = (await deployments.SnapshotAsync(Scenario.WorkerWithEntra)).Single(App).Get("properties", "configuration", "ingress");
        Assert.True(ingress.Get("external").GetValue<bool>());
        var rule = Assert.Single(ingress.Objects("ipSecurityRestrictions"));
        Assert.Equal("203.0.113.0/24", rule.Text("ipAddressRange"));
        Assert.Equal("Allow", rule.Text("action"));
        Assert.False(Assert.Single(ingress.Objects("additionalPortMappings")).Get("external").GetValue<bool>());
    }

    [Fact]
    public async Task Key_auth_reads_the_keys_from_Key_Vault_as_the_identity()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var env = deployment.WorkerEnv();
        Assert.Equal("key", env["LEPTON_WORKER_AUTH"].Text("value"));
        var keys = env["LEPTON_WORKER_API_KEYS"];
        Assert.Null(keys.Find("value"));
        var secret = Assert.Single(deployment.Single(App).Objects("properties", "configuration", "secrets"));
        Assert.Equal(keys.Text("secretRef"), secret.Text("name"));
        Assert.Null(secret.Find("value"));
        Assert.Equal(deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id"), secret.Text("identity"));
        var vault = deployment.Single("Microsoft.KeyVault/vaults").Text("id");
        Assert.Equal($"[format('{{0}}secrets/{{1}}', reference('{vault}', '2025-05-01').vaultUri, 'worker-api-keys')]", secret.Text("keyVaultUrl"));
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("LEPTON_WORKER_ENTRA_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Entra_auth_names_the_tenant_and_audience_and_holds_no_secret()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithEntra);
        var env = deployment.WorkerEnv();
        Assert.Equal("entra", env["LEPTON_WORKER_AUTH"].Text("value"));
        Assert.Equal("33333333-3333-3333-3333-333333333333", env["LEPTON_WORKER_ENTRA_TENANT_ID"].Text("value"));
        Assert.Equal("api://lepton-worker", env["LEPTON_WORKER_ENTRA_AUDIENCE"].Text("value"));
        Assert.DoesNotContain("LEPTON_WORKER_API_KEYS", env.Keys);
        Assert.Empty(deployment.Single(App).Get("properties", "configuration", "secrets").AsArray());
    }

    [Fact]
    public async Task Open_auth_is_explicit_and_carries_neither_keys_nor_tenant()
    {
        var env = (await deployments.SnapshotAsync(Scenario.WorkerOpen)).WorkerEnv();
        Assert.Equal("none", env["LEPTON_WORKER_AUTH"].Text("value"));
        Assert.DoesNotContain(env.Keys, k => k is "LEPTON_WORKER_API_KEYS" || k.StartsWith("LEPTON_WORKER_ENTRA_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_worker_listens_on_every_interface_and_reaches_storage_as_the_identity()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var env = deployment.WorkerEnv().ToDictionary(e => e.Key, e => e.Value.Find("value")?.GetValue<string>());
        Assert.Equal("0.0.0.0", env["LEPTON_WORKER_HOST"]);
        Assert.Equal("managedidentity", env["AzureWebJobsStorage__credential"]);
        Assert.Equal($"[reference('{deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id")}', '2024-11-30').clientId]", env["AzureWebJobsStorage__clientId"]);
        Assert.Equal(deployment.Single("Microsoft.Storage/storageAccounts").Text("name"), env["AzureWebJobsStorage__accountName"]);
        Assert.DoesNotContain("AzureWebJobsStorage", env.Keys);
    }

    [Fact]
    public async Task The_worker_scales_on_concurrent_requests_within_its_bounds()
    {
        var scale = (await deployments.SnapshotAsync(Scenario.WorkerWithKeys)).Single(App).Get("properties", "template", "scale");
        Assert.Equal(1, scale.Get("minReplicas").GetValue<int>());
        Assert.Equal(4, scale.Get("maxReplicas").GetValue<int>());
        var rule = Assert.Single(scale.Objects("rules"));
        Assert.Equal("64", rule.Text("http", "metadata", "concurrentRequests"));
    }

    [Fact]
    public async Task No_secret_appears_in_any_deployed_property()
    {
        foreach (var scenario in new[] { Scenario.Dev, Scenario.WorkerWithKeys, Scenario.WorkerWithEntra })
        {
            var deployment = await deployments.SnapshotAsync(scenario);
            var findings = TemplateTests.SecretFindings(scenario.Name, deployment.Resources.SelectMany(r => Json.Strings((JsonNode)r)));
            Assert.Empty(findings);
        }
    }
}
