using Lepton.Shared.Storage;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// The storage account accepts Entra ID only, holds the containers and tables Lepton.Shared's
/// StorageLayout names, keeps overwritten models recoverable, and has the Event Grid system topic
/// the blob trigger is subscribed to; telemetry is workspace based with local auth off.
/// </summary>
public sealed class StorageTests(Deployments deployments)
{
    private const string Account = "Microsoft.Storage/storageAccounts";

    [Fact]
    public async Task The_account_accepts_Entra_ID_only_over_TLS_1_2()
    {
        var account = (await deployments.SnapshotAsync(Scenario.Dev)).Single(Account);
        var properties = account.Get("properties");
        Assert.False(properties.Get("allowSharedKeyAccess").GetValue<bool>());
        Assert.True(properties.Get("defaultToOAuthAuthentication").GetValue<bool>());
        Assert.False(properties.Get("allowBlobPublicAccess").GetValue<bool>());
        Assert.False(properties.Get("allowCrossTenantReplication").GetValue<bool>());
        Assert.True(properties.Get("supportsHttpsTrafficOnly").GetValue<bool>());
        Assert.Equal("TLS1_2", properties.Text("minimumTlsVersion"));
        Assert.Equal("StorageV2", account.Text("kind"));
    }

    [Fact]
    public async Task Redundancy_is_geo_zone_redundant_by_default_and_local_in_dev()
    {
        Assert.Equal("Standard_LRS", (await deployments.SnapshotAsync(Scenario.Dev)).Single(Account).Text("sku", "name"));
        Assert.Equal("Standard_GZRS", (await deployments.SnapshotAsync(Scenario.WorkerWithKeys)).Single(Account).Text("sku", "name"));
    }

    [Fact]
    public async Task The_containers_and_tables_are_the_ones_the_code_uses()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var account = deployment.Single(Account).Text("name");
        var containers = deployment.OfType($"{Account}/blobServices/containers").ToList();
        Assert.All(containers, c => Assert.Equal("None", c.Text("properties", "publicAccess")));
        var names = containers.Select(c => c.Text("name")).ToList();
        var data = names.Where(n => !n.StartsWith($"{account}/default/app-package-", StringComparison.Ordinal));
        Assert.Equal(StorageLayout.Containers.Select(c => $"{account}/default/{c}").Order(), data.Order());
        // Plus the one Flex Consumption deployment container the Function App pulls its package from.
        var package = Assert.Single(names, n => n.StartsWith($"{account}/default/app-package-", StringComparison.Ordinal));
        var site = deployment.Single("Microsoft.Web/sites");
        Assert.EndsWith($"'{package.Split('/')[^1]}')]", site.Text("properties", "functionAppConfig", "deployment", "storage", "value"), StringComparison.Ordinal);

        var tables = deployment.OfType($"{Account}/tableServices/tables").Select(t => t.Text("name")).Order();
        Assert.Equal(StorageLayout.Tables.Select(t => $"{account}/default/{t}").Order(), tables);
    }

    [Fact]
    public async Task Blob_versioning_and_soft_delete_keep_overwritten_models_recoverable()
    {
        var service = (await deployments.SnapshotAsync(Scenario.Dev)).Single($"{Account}/blobServices").Get("properties");
        Assert.True(service.Get("isVersioningEnabled").GetValue<bool>());
        Assert.True(service.Get("deleteRetentionPolicy", "enabled").GetValue<bool>());
        Assert.True(service.Get("containerDeleteRetentionPolicy", "enabled").GetValue<bool>());
    }

    [Fact]
    public async Task The_Event_Grid_system_topic_watches_the_account()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var topic = deployment.Single("Microsoft.EventGrid/systemTopics");
        Assert.Equal("Microsoft.Storage.StorageAccounts", topic.Text("properties", "topicType"));
        Assert.Equal(deployment.Single(Account).Text("id"), topic.Text("properties", "source"));
    }

    [Fact]
    public async Task Storage_services_environment_and_vault_send_their_logs_to_the_workspace()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var workspace = deployment.Single("Microsoft.OperationalInsights/workspaces").Text("id");
        var diagnostics = deployment.OfType("Microsoft.Insights/diagnosticSettings").ToList();
        Assert.All(diagnostics, d => Assert.Equal(workspace, d.Text("properties", "workspaceId")));
        var account = deployment.Single(Account).Text("id");
        Assert.Equal(
            new[]
            {
                $"{account}/blobServices/default",
                $"{account}/queueServices/default",
                $"{account}/tableServices/default",
                deployment.Single("Microsoft.App/managedEnvironments").Text("id"),
                deployment.Single("Microsoft.KeyVault/vaults").Text("id"),
            }.Order(StringComparer.OrdinalIgnoreCase),
            diagnostics.Select(PredictedDeployment.ScopeOf).Order(StringComparer.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Telemetry_is_workspace_based_and_accepts_Entra_ID_only()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var workspace = deployment.Single("Microsoft.OperationalInsights/workspaces");
        Assert.True(workspace.Get("properties", "features", "disableLocalAuth").GetValue<bool>());
        var insights = deployment.Single("Microsoft.Insights/components").Get("properties");
        Assert.True(insights.Get("DisableLocalAuth").GetValue<bool>());
        Assert.Equal(workspace.Text("id"), insights.Text("WorkspaceResourceId"));
    }
}
