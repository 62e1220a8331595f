using System.Text.Json.Nodes;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// The one managed identity holds exactly the data-plane roles the apps need, each on the single
/// resource it covers; nothing is granted at the resource group or subscription, and no role that
/// manages resources, assigns roles or reads keys is ever assigned.
/// </summary>
public sealed class RoleAssignmentTests(Deployments deployments)
{
    // Built-in role definition IDs (the same in every tenant).
    private const string StorageBlobDataOwner = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
    private const string StorageQueueDataContributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88";
    private const string StorageTableDataContributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3";
    private const string MonitoringMetricsPublisher = "3913510d-42f4-4e42-8a64-420c390055eb";
    private const string AcrPull = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
    private const string KeyVaultSecretsUser = "4633458b-17de-408a-b874-0445c86b69e6";

    /// <summary>Roles far broader than any Lepton component needs.</summary>
    private static readonly Dictionary<string, string> BroadRoles = new(StringComparer.OrdinalIgnoreCase)
    {
        ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"] = "Owner",
        ["b24988ac-6180-42a0-ab88-20f7382dd24c"] = "Contributor",
        ["18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"] = "User Access Administrator",
        ["f58310d9-a9f6-439a-9e8d-f62e7b41a168"] = "Role Based Access Control Administrator",
        ["17d1049b-9a84-46fb-8f53-869881c3d3ab"] = "Storage Account Contributor",
        ["81a9662b-bebf-436f-a333-f67b29880f12"] = "Storage Account Key Operator Service Role",
        ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = "Key Vault Administrator",
        ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7"] = "Key Vault Secrets Officer",
        ["8311e382-0749-4cb8-b61a-304f252e45ec"] = "AcrPush",
    };

    /// <summary>(scope, role GUID) of every assignment, or the problems that make an assignment unacceptable.</summary>
    internal static (IReadOnlySet<(string Scope, string Role)> Granted, IReadOnlyList<string> Problems) Assignments(
        PredictedDeployment deployment, IEnumerable<JsonObject> assignments)
    {
        var identity = deployment.Single("Microsoft.ManagedIdentity/userAssignedIdentities").Text("id");
        var resources = deployment.Resources.Select(r => r.Text("id")).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var granted = new HashSet<(string, string)>();
        var problems = new List<string>();
        foreach (var assignment in assignments)
        {
            var scope = PredictedDeployment.ScopeOf(assignment);
            var role = assignment.Text("properties", "roleDefinitionId").Split('/')[^1];
            granted.Add((scope, role));
            if (!resources.Contains(scope))
            {
                problems.Add($"role {role} is assigned at {scope}, not on one resource of the deployment");
            }
            if (BroadRoles.TryGetValue(role, out var broad))
            {
                problems.Add($"{broad} is assigned at {scope}: grant the data-plane role the app needs instead");
            }
            if (assignment.Text("properties", "principalId") != $"[reference('{identity}', '2024-11-30').principalId]"
                || assignment.Text("properties", "principalType") != "ServicePrincipal")
            {
                problems.Add($"role {role} at {scope} is granted to someone other than the managed identity");
            }
        }
        return (granted, problems);
    }

    [Fact]
    public async Task The_identity_gets_exactly_the_data_roles_each_on_its_resource()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var (granted, problems) = Assignments(deployment, deployment.OfType("Microsoft.Authorization/roleAssignments"));
        Assert.Empty(problems);
        var storage = deployment.Single("Microsoft.Storage/storageAccounts").Text("id");
        Assert.Equal(
            new HashSet<(string, string)>
            {
                (storage, StorageBlobDataOwner),
                (storage, StorageQueueDataContributor),
                (storage, StorageTableDataContributor),
                (deployment.Single("Microsoft.Insights/components").Text("id"), MonitoringMetricsPublisher),
                (deployment.Single("Microsoft.ContainerRegistry/registries").Text("id"), AcrPull),
                (deployment.Single("Microsoft.KeyVault/vaults").Text("id"), KeyVaultSecretsUser),
            },
            granted);
    }

    [Fact]
    public async Task A_broad_role_or_a_resource_group_scope_is_caught()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var assignment = deployment.OfType("Microsoft.Authorization/roleAssignments").First().DeepClone().AsObject();
        var id = assignment.Text("id");
        assignment["id"] = $"{Deployments.ResourceGroupId}{id[id.LastIndexOf("/providers/Microsoft.Authorization", StringComparison.Ordinal)..]}";
        assignment["properties"]!["roleDefinitionId"] = $"/subscriptions/{Deployments.SubscriptionId}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c";
        var (_, problems) = Assignments(deployment, [assignment]);
        Assert.Equal(
            [
                $"role b24988ac-6180-42a0-ab88-20f7382dd24c is assigned at {Deployments.ResourceGroupId}, not on one resource of the deployment",
                $"Contributor is assigned at {Deployments.ResourceGroupId}: grant the data-plane role the app needs instead",
            ],
            problems);
    }

    [Fact]
    public async Task The_Key_Vault_is_RBAC_only_and_keeps_deleted_secrets()
    {
        var vault = (await deployments.SnapshotAsync(Scenario.WorkerWithKeys)).Single("Microsoft.KeyVault/vaults").Get("properties");
        Assert.True(vault.Get("enableRbacAuthorization").GetValue<bool>());
        Assert.True(vault.Get("enableSoftDelete").GetValue<bool>());
        Assert.True(vault.Get("enablePurgeProtection").GetValue<bool>());
        Assert.Equal(Deployments.TenantId, vault.Text("tenantId"));
        Assert.False(vault.Find("accessPolicies") is JsonArray { Count: > 0 }, "the vault has access policies besides RBAC");
        // Development vaults can be purged, so their names can be reused at once.
        var dev = (await deployments.SnapshotAsync(Scenario.Dev)).Single("Microsoft.KeyVault/vaults").Get("properties");
        Assert.Null(dev.Find("enablePurgeProtection"));
    }

    [Fact]
    public async Task The_registry_allows_no_admin_user_and_no_anonymous_pull()
    {
        var registry = (await deployments.SnapshotAsync(Scenario.Dev)).Single("Microsoft.ContainerRegistry/registries").Get("properties");
        Assert.False(registry.Get("adminUserEnabled").GetValue<bool>());
        Assert.False(registry.Get("anonymousPullEnabled").GetValue<bool>());
    }
}
