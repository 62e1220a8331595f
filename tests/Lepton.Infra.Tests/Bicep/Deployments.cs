using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// A set of parameter values for main.bicep, written as the body of a <c>.bicepparam</c> file.
/// </summary>
internal sealed record Scenario(string Name, string Parameters)
{
    /// <summary>The repository's own development parameters (infra/bicep/main.dev.bicepparam).</summary>
    public static Scenario Dev { get; } = new("dev", string.Join('\n',
        File.ReadAllLines(Repository.DevParameters).Where(line => !line.TrimStart().StartsWith("using ", StringComparison.Ordinal))));

    private const string Worker = """
        param environmentName = 'test'
        param workerImage = 'crleptontest.azurecr.io/lepton-worker:0123abc'
        param alertEmail = 'ops@example.com'
        """;

    /// <summary>The worker deployed with API keys from Key Vault (the default auth).</summary>
    public static Scenario WorkerWithKeys { get; } = new("worker-key", Worker + "\nparam workerAuth = 'key'");

    /// <summary>
    /// The worker deployed with Entra ID tokens and reachable from outside the environment by one
    /// caller range: the set-up for callers outside Azure.
    /// </summary>
    public static Scenario WorkerWithEntra { get; } = new("worker-entra", Worker + """

        param workerAuth = 'entra'
        param workerEntraAudience = 'api://lepton-worker'
        param workerEntraTenantId = '33333333-3333-3333-3333-333333333333'
        param workerAllowedIpRanges = ['203.0.113.0/24']
        """);

    /// <summary>The worker deployed without caller authentication (development only).</summary>
    public static Scenario WorkerOpen { get; } = new("worker-none", Worker + "\nparam workerAuth = 'none'");

    /// <summary>Every scenario that deploys the worker, one per auth mode.</summary>
    public static IReadOnlyList<Scenario> WorkerAuthModes { get; } = [WorkerWithKeys, WorkerWithEntra, WorkerOpen];
}

/// <summary>
/// main.bicep evaluated by <c>bicep snapshot</c> for a scenario: the resources a deployment
/// would create, with every expression the CLI can resolve offline resolved (names, ids,
/// conditions, loops, module parameters) and run-time values left as ARM expressions
/// (<c>[reference('…').clientId]</c>).
/// </summary>
internal sealed class PredictedDeployment(string scenario, IReadOnlyList<JsonObject> resources)
{
    public string Scenario { get; } = scenario;

    public IReadOnlyList<JsonObject> Resources { get; } = resources;

    public IEnumerable<JsonObject> OfType(string type) =>
        Resources.Where(r => string.Equals(r.Text("type"), type, StringComparison.OrdinalIgnoreCase));

    public JsonObject Single(string type)
    {
        var found = OfType(type).ToList();
        return found.Count == 1
            ? found[0]
            : throw new InvalidOperationException($"{Scenario}: expected one {type}, found {found.Count}");
    }

    /// <summary>The resource an extension resource (a role assignment, a diagnostic setting) applies to.</summary>
    public static string ScopeOf(JsonObject extension)
    {
        var id = extension.Text("id");
        var at = id.LastIndexOf("/providers/", StringComparison.OrdinalIgnoreCase);
        return at > 0 ? id[..at] : throw new InvalidOperationException($"{id} is not an extension resource");
    }

    /// <summary>The Function App's app settings, name to value (a string or an ARM expression).</summary>
    public IReadOnlyDictionary<string, string> FunctionAppSettings() =>
        Single("Microsoft.Web/sites").Objects("properties", "siteConfig", "appSettings")
            .ToDictionary(s => s.Text("name"), s => s.Text("value"), StringComparer.Ordinal);

    public JsonObject WorkerContainer() =>
        Single("Microsoft.App/containerApps").Objects("properties", "template", "containers").Single();

    /// <summary>The worker container's environment, name to the entry (with value or secretRef).</summary>
    public IReadOnlyDictionary<string, JsonObject> WorkerEnv() =>
        WorkerContainer().Objects("env").ToDictionary(e => e.Text("name"), e => e, StringComparer.Ordinal);
}

/// <summary>
/// The Bicep CLI's view of infra/bicep, computed once per run and shared by every test: the ARM
/// JSON of each template (<c>bicep build</c>) and a snapshot of main.bicep per scenario.
/// </summary>
public sealed class Deployments : IDisposable
{
    public const string SubscriptionId = "11111111-1111-1111-1111-111111111111";
    public const string TenantId = "22222222-2222-2222-2222-222222222222";
    public const string ResourceGroup = "rg-lepton-test";
    public const string Location = "swedencentral";

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("lepton-bicep-");
    private readonly ConcurrentDictionary<string, Lazy<Task<PredictedDeployment>>> _snapshots = new();
    private readonly Lazy<Task<IReadOnlyDictionary<string, JsonObject>>> _templates;

    public Deployments() => _templates = new(BuildAllAsync);

    public static string ResourceGroupId => $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}";

    /// <summary>Template path (relative to infra/bicep, '/'-separated) to its compiled ARM JSON.</summary>
    internal Task<IReadOnlyDictionary<string, JsonObject>> TemplatesAsync() => _templates.Value;

    /// <summary>What a deployment of main.bicep with this scenario's parameters would create.</summary>
    internal Task<PredictedDeployment> SnapshotAsync(Scenario scenario) =>
        _snapshots.GetOrAdd(scenario.Name, _ => new Lazy<Task<PredictedDeployment>>(() => RunSnapshotAsync(scenario))).Value;

    /// <summary>Runs <c>bicep snapshot</c> for parameters that may be refused, returning what the CLI said.</summary>
    internal async Task<BicepRun> TrySnapshotAsync(string name, string parameters)
    {
        var file = WriteParameters(name, parameters);
        return await BicepCli.RunAsync(_work.FullName, SnapshotArguments(file));
    }

    public void Dispose() => _work.Delete(recursive: true);

    private async Task<PredictedDeployment> RunSnapshotAsync(Scenario scenario)
    {
        var file = WriteParameters(scenario.Name, scenario.Parameters);
        var run = await BicepCli.RunAsync(_work.FullName, SnapshotArguments(file));
        var output = Path.ChangeExtension(file, ".snapshot.json");
        if (run.ExitCode != 0 || run.Diagnostics.Count > 0 || !File.Exists(output))
        {
            throw new InvalidOperationException($"bicep snapshot of scenario {scenario.Name} failed ({run.ExitCode}):\n{run.Output}");
        }
        var snapshot = JsonNode.Parse(await File.ReadAllTextAsync(output))!;
        var diagnostics = snapshot.Get("diagnostics").AsArray();
        if (diagnostics.Count > 0)
        {
            throw new InvalidOperationException($"bicep snapshot of scenario {scenario.Name} reported {diagnostics.ToJsonString()}");
        }
        return new PredictedDeployment(scenario.Name, snapshot.Objects("predictedResources"));
    }

    private string WriteParameters(string name, string parameters)
    {
        // A .bicepparam must name its template by a relative path.
        var template = Path.GetRelativePath(_work.FullName, Repository.MainTemplate).Replace('\\', '/');
        var file = Path.Combine(_work.FullName, $"{name}.bicepparam");
        File.WriteAllText(file, $"using '{template}'\n{parameters}\n");
        return file;
    }

    private static string[] SnapshotArguments(string file) =>
    [
        "snapshot", file,
        "--subscription-id", SubscriptionId,
        "--tenant-id", TenantId,
        "--resource-group", ResourceGroup,
        "--location", Location,
        "--deployment-name", "lepton",
    ];

    private async Task<IReadOnlyDictionary<string, JsonObject>> BuildAllAsync()
    {
        var output = _work.CreateSubdirectory("arm");
        var run = await BicepCli.RunAsync(Repository.BicepDir,
            "build", "--no-restore", "--pattern", "**/*.bicep", "--outdir", output.FullName);
        if (run.ExitCode != 0 || run.Diagnostics.Count > 0)
        {
            throw new InvalidOperationException($"bicep build of infra/bicep failed ({run.ExitCode}):\n{run.Output}");
        }
        var templates = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var source in Directory.EnumerateFiles(Repository.BicepDir, "*.bicep", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Repository.BicepDir, source).Replace('\\', '/');
            var compiled = Path.Combine(output.FullName, Path.ChangeExtension(relative, ".json"));
            templates[relative] = JsonNode.Parse(await File.ReadAllTextAsync(compiled))!.AsObject();
        }
        return templates;
    }
}
