using System.Xml.Linq;
using Lepton.Shared.Configuration;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// The control plane: a Flex Consumption Function App running the .NET isolated worker at the .NET
/// version the code targets, as the one managed identity, with identity-based storage settings,
/// HTTPS only and no basic-auth publishing.
/// </summary>
public sealed class FunctionAppTests(Deployments deployments)
{
    private static string IdentityReference(PredictedDeployment deployment, string property) =>
        $"reference('{deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id")}', '2024-11-30').{property}";

    [Fact]
    public async Task The_plan_is_Flex_Consumption_on_Linux()
    {
        var plan = (await deployments.SnapshotAsync(Scenario.Dev)).Single("Microsoft.Web/serverfarms");
        Assert.Equal("FlexConsumption", plan.Text("sku", "tier"));
        Assert.Equal("FC1", plan.Text("sku", "name"));
        Assert.True(plan.Get("properties", "reserved").GetValue<bool>());
        Assert.False(plan.Get("properties", "zoneRedundant").GetValue<bool>());
        var production = (await deployments.SnapshotAsync(Scenario.WorkerWithKeys)).Single("Microsoft.Web/serverfarms");
        Assert.True(production.Get("properties", "zoneRedundant").GetValue<bool>());
    }

    [Fact]
    public async Task The_runtime_is_dotnet_isolated_at_the_version_the_code_targets()
    {
        var site = (await deployments.SnapshotAsync(Scenario.Dev)).Single("Microsoft.Web/sites");
        Assert.Equal("functionapp,linux", site.Text("kind"));
        var framework = XDocument.Load(Repository.At("Directory.Build.props")).Descendants("TargetFramework").Single().Value;
        Assert.Equal("dotnet-isolated", site.Text("properties", "functionAppConfig", "runtime", "name"));
        Assert.Equal(framework.Replace("net", "", StringComparison.Ordinal), site.Text("properties", "functionAppConfig", "runtime", "version"));
        var scale = site.Get("properties", "functionAppConfig", "scaleAndConcurrency");
        Assert.Equal(40, scale.Get("maximumInstanceCount").GetValue<int>());
        Assert.Equal(2048, scale.Get("instanceMemoryMB").GetValue<int>());
    }

    [Fact]
    public async Task The_package_comes_from_blob_storage_pulled_as_the_identity()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var storage = deployment.Single("Microsoft.Web/sites").Get("properties", "functionAppConfig", "deployment", "storage");
        Assert.Equal("blobContainer", storage.Text("type"));
        Assert.Equal("UserAssignedIdentity", storage.Text("authentication", "type"));
        Assert.Equal(deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id"),
            storage.Text("authentication", "userAssignedIdentityResourceId"));
    }

    [Fact]
    public async Task The_app_runs_as_the_one_user_assigned_identity()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var identity = Assert.Single(deployment.OfType("Microsoft.ManagedIdentity/userAssignedIdentities")).Text("id");
        foreach (var type in new[] { "Microsoft.Web/sites", "Microsoft.App/containerApps" })
        {
            var app = deployment.Single(type).Get("identity");
            Assert.Equal("UserAssigned", app.Text("type"));
            Assert.Equal([identity], app.Get("userAssignedIdentities").AsObject().Select(p => p.Key));
        }
    }

    [Fact]
    public async Task Storage_and_telemetry_settings_are_identity_based()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var settings = deployment.FunctionAppSettings();
        var account = deployment.Single("Microsoft.Storage/storageAccounts");
        var endpoints = $"reference('{account.Text("id")}', '2025-01-01').primaryEndpoints";
        Assert.Equal(account.Text("name"), settings[AppSettingNames.StorageAccountName]);
        Assert.Equal("managedidentity", settings[AppSettingNames.StorageCredential]);
        Assert.Equal($"[{IdentityReference(deployment, "clientId")}]", settings[AppSettingNames.StorageClientId]);
        Assert.Equal($"[{endpoints}.blob]", settings[AppSettingNames.StorageBlobServiceUri]);
        Assert.Equal($"[{endpoints}.queue]", settings[AppSettingNames.StorageQueueServiceUri]);
        Assert.Equal($"[{endpoints}.table]", settings[AppSettingNames.StorageTableServiceUri]);
        Assert.DoesNotContain(AppSettingNames.Storage, settings.Keys);
        Assert.Equal($"[format('ClientId={{0}};Authorization=AAD', {IdentityReference(deployment, "clientId")})]",
            settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]);
        Assert.Equal($"[{IdentityReference(deployment, "clientId")}]", settings["AZURE_CLIENT_ID"]);
        Assert.Equal("/tmp/lepton-cache", settings[AppSettingNames.CacheDir]);
    }

    [Fact]
    public async Task The_site_is_HTTPS_only_with_TLS_1_2_and_no_basic_auth_publishing()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var site = deployment.Single("Microsoft.Web/sites");
        Assert.True(site.Get("properties", "httpsOnly").GetValue<bool>());
        Assert.Equal("1.2", site.Text("properties", "siteConfig", "minTlsVersion"));
        Assert.Equal("Disabled", site.Text("properties", "siteConfig", "ftpsState"));
        Assert.False(site.Get("properties", "siteConfig", "remoteDebuggingEnabled").GetValue<bool>());
        var policies = deployment.OfType("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
            .ToDictionary(p => p.Text("name").Split('/')[^1], p => p.Get("properties", "allow").GetValue<bool>());
        Assert.Equal(new Dictionary<string, bool> { ["ftp"] = false, ["scm"] = false }, policies);
    }
}
