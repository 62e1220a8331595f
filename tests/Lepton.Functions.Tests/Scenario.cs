using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Lepton.Cli.Samples;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Lepton.Testing;

namespace Lepton.Functions.Tests;

/// <summary>One lifecycle test's world: a fresh control plane on the shared Azurite, a model of its own, its dataset and helpers.</summary>
public abstract class Scenario(AzuriteFixture azurite) : IAsyncLifetime
{
    /// <summary>
    /// The compressed policy: 1 s windows and sub-second polls, so a whole rollout takes seconds.
    /// Warm-up and slot waits are generous: on a loaded 2-core machine a replica's tick can lag.
    /// </summary>
    public static JsonObject Fast() => new()
    {
        ["steps_bp"] = new JsonArray(5000, 10000),
        ["window_s"] = 1.0,
        ["check_interval_s"] = 0.5,
        ["max_extensions"] = 2,
        ["shadow_duration_s"] = 1.0,
        ["approval_timeout_s"] = 30.0,
        ["bake_s"] = 0.3,
        ["warmup_timeout_s"] = 20.0,
        ["warmup_poll_s"] = 0.3,
        ["slot_wait_timeout_s"] = 30.0,
        ["slot_poll_s"] = 0.3,
        ["retry_interval_s"] = 0.1,
        ["retry_attempts"] = 2,
        ["thresholds"] = new JsonObject { ["min_requests"] = 40 },
        ["evaluation"] = new JsonObject { ["shards"] = 2 },
    };

    /// <summary>The compressed policy with some fields replaced.</summary>
    public static JsonObject Fast(params (string Key, JsonNode? Value)[] changes)
    {
        var policy = Fast();
        foreach (var (key, value) in changes)
        {
            policy[key] = value;
        }
        return policy;
    }

    protected static readonly (Dataset Train, Dataset Test) Digits = SampleDatasets.Digits();

    protected AzuriteFixture Azurite { get; } = azurite;

    protected string Model { get; } = TestNames.Model("digits");

    protected LifecycleHost Host { get; set; } = null!;

    protected static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>App settings the scenario's control plane starts with, besides storage and cache.</summary>
    protected virtual IReadOnlyDictionary<string, string?>? HostSettings => null;

    public virtual async ValueTask InitializeAsync()
    {
        Host = await LifecycleHost.StartAsync(Azurite, HostSettings);
        await Host.Store.PutDatasetAsync(Model, "digits", Digits.Test, Token);
    }

    public virtual async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    protected static byte[] Good => SampleDatasets.GoodClassifier(Digits.Train);

    /// <summary>
    /// Uploads as an external tool (azcopy, the portal) would: the manifest first, then the file,
    /// with no sha256 metadata, so the lifecycle hashes an upload made outside Lepton.
    /// </summary>
    protected async Task<string> UploadAsync(string version, byte[] model, string? dataset = "digits", JsonObject? policy = null, bool breaking = false)
    {
        await Host.Store.PutManifestAsync(Model, version, new Manifest { Dataset = dataset, Policy = policy ?? [], Breaking = breaking }, Token);
        await Azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient($"{Model}/{version}/model.onnx")
            .UploadAsync(BinaryData.FromBytes(model), overwrite: false, Token);
        return Convert.ToHexStringLower(SHA256.HashData(model));
    }

    protected async Task<string> StartAsync(string version, string sha256, JsonObject? policy = null) =>
        await Host.StartAsync(Model, version, sha256, policy ?? Fast());

    protected async Task<Functions.Lifecycle.LifecycleOutcome> RunAsync(string version, byte[] model, JsonObject? policy = null, double timeoutS = 60)
    {
        var sha = await UploadAsync(version, model);
        return await Host.WaitDoneAsync(await StartAsync(version, sha, policy), timeoutS);
    }

    /// <summary>Asserts the lifecycle's outcome, showing its reason when it is not the expected one.</summary>
    protected static void AssertOutcome(string expected, Functions.Lifecycle.LifecycleOutcome outcome) =>
        Assert.True(outcome.Outcome == expected, $"expected {expected}, got {outcome.Outcome} ({outcome.Stage}): {outcome.Reason}");

    protected async Task SeedProductionAsync()
    {
        var outcome = await RunAsync("1.0.0", Good);
        AssertOutcome("production", outcome);
    }

    /// <summary>A simulated worker replica on its own storage clients, so it outlives a restart of the control plane.</summary>
    protected SimulatedReplica Replica() =>
        new(new ModelRegistry(Azurite.Clients, TimeProvider.System), new Shared.Workers.WorkerDirectory(Azurite.Clients), new Shared.Metrics.MetricsStore(Azurite.Clients), Model);

    /// <summary>(from, to) of the version's registration and stage transitions, in order.</summary>
    protected async Task<List<(string? From, string? To)>> TransitionsAsync(string version) =>
        (await Host.Registry.HistoryAsync(Model, version, Token))
            .Where(e => e.Kind is AuditKinds.Transition or AuditKinds.Registered)
            .Select(e => (e.From, e.To))
            .ToList();

    /// <summary>Traffic changes whose new routes name <paramref name="version"/> in any slot.</summary>
    protected async Task<List<AuditEvent>> RouteEventsNamingAsync(string version) =>
        (await Host.Registry.HistoryAsync(Model, cancellationToken: Token))
            .Where(e => e.Kind == AuditKinds.Routes && (e.To ?? "").Contains($"\"{version}\"", StringComparison.Ordinal))
            .ToList();

    /// <summary>The candidate weights of every route change that named <paramref name="version"/> as the candidate.</summary>
    protected async Task<List<int>> CandidateWeightsAsync(string version) =>
        (await Host.Registry.HistoryAsync(Model, cancellationToken: Token))
            .Where(e => e.Kind == AuditKinds.Routes)
            .Select(e => JsonNode.Parse(e.To ?? "{}")!)
            .Where(r => r["candidate"]?.GetValue<string>() == version)
            .Select(r => r["candidate_weight_bp"]!.GetValue<int>())
            .ToList();

    protected async Task<JsonNode> ReportAsync(string version, string stage) => await Host.Store.GetReportAsync(Model, version, stage, Token);
}
