using System.Diagnostics;
using System.Text.Json.Nodes;
using Lepton.Cli.Api;
using Lepton.Cli.Samples;
using Lepton.Cli.Views;
using Lepton.Shared;
using Lepton.Shared.Models;

namespace Lepton.Cli.Demo;

/// <summary>One version the demo pushes, and the final stages that tell its story.</summary>
public sealed record DemoStep(string Version, Func<Dataset, byte[]> Build, string Story, IReadOnlySet<string> Expected);

/// <summary>What happened to one version, and what the callers saw while it was in play.</summary>
public sealed record VersionOutcome(string Version, string Story, string Stage, string Reason, TimeSpan Took, long Served, long Failed, IReadOnlyList<string> Reports, bool AsExpected);

public sealed record DemoResult(string Model, IReadOnlyList<VersionOutcome> Outcomes, LoadSummary Load)
{
    public bool AsExpected => Outcomes.All(o => o.AsExpected);

    /// <summary>Failed caller requests served by any version other than <paramref name="version"/>.</summary>
    public long FailedOutside(string version) => Load.FailedByVersion.Where(p => p.Key != version).Sum(p => p.Value);
}

/// <summary>
/// The demo: five digits models pushed in turn under live traffic. v1.0.0 (a weak classifier)
/// becomes production; v1.1.0 (better) is canaried and promoted; v1.1.1 (32 inputs instead of 64)
/// is rejected at validation; v1.2.0 (NaN when a feature leaves the training range) passes offline
/// evaluation and is rolled back by the canary on errors; v1.3.0 (slow) is stopped on latency.
/// A load generator calls the worker throughout, including the out-of-range slice, so the failed
/// requests a caller sees are counted per version. Each version is pushed the way a user pushes it
/// (model blob + manifest, which starts the lifecycle) with a compressed policy.
/// </summary>
public static class DemoScenario
{
    public const string DefaultModel = "digits";
    public const string Dataset = "digits";

    public static readonly IReadOnlyList<DemoStep> Steps =
    [
        new("1.0.0", train => SampleDatasets.WeakClassifier(train), "a weak model becomes production", Set("production")),
        new("1.1.0", SampleDatasets.GoodClassifier, "a better model is canaried and promoted", Set("production")),
        new("1.1.1", SampleDatasets.NarrowerInput, "a broken input signature is rejected at validation", Set("rejected")),
        new("1.2.0", SampleDatasets.NanOnUnseen, "NaN on unseen inputs: passes evaluation, rolled back by the canary", Set("rolled_back")),
        new("1.3.0", train => SampleDatasets.SlowClassifier(train), "a slow model is stopped on latency", Set("rolled_back", "rejected")),
    ];

    /// <summary>
    /// A compressed policy: seconds-long windows and polls, so the whole demo takes minutes. Latency
    /// on a shared 2-core machine jitters by milliseconds, so the canary's latency ratio is set high
    /// and a p95 must also rise by 50 ms before it counts: sub-millisecond models measured 5-15 ms
    /// p95 in a candidate's first window while the machine was busy (scheduler ticks, a version's
    /// first batches), which rolled a good model back. The slow model is 300x slower and the
    /// evaluation gate (same batches, no HTTP) stops it first.
    /// </summary>
    public static JsonObject Policy(double windowS = 4) => new()
    {
        ["steps_bp"] = new JsonArray(2500, 5000, 10_000),
        ["window_s"] = windowS,
        ["check_interval_s"] = windowS / 2,
        ["max_extensions"] = 3,
        ["shadow"] = false,
        ["bake_s"] = 1.0,
        ["warmup_timeout_s"] = 60.0,
        ["warmup_poll_s"] = 0.5,
        ["heartbeat_max_age_s"] = 15.0,
        ["slot_wait_timeout_s"] = 120.0,
        ["slot_poll_s"] = 0.5,
        ["retry_interval_s"] = 0.5,
        // A better model is more confident than the weak one, which shifts the score distribution
        // (PSI ≫ 0.2) without being worse: the demo judges errors and latency.
        ["thresholds"] = new JsonObject
        {
            ["min_requests"] = 40,
            ["max_psi"] = 1000.0,
            ["max_p95_latency_ratio"] = 10.0,
            ["min_p95_latency_delta_ms"] = 50.0,
            ["latency_alpha"] = 0.001,
        },
        ["evaluation"] = new JsonObject { ["shards"] = 2 },
    };

    /// <summary>Runs the scenario against a running stack; returns what happened (it asserts nothing).</summary>
    public static async Task<DemoResult> RunAsync(
        LeptonApiClient api,
        ModelStore store,
        Action<string> log,
        string? model = null,
        JsonObject? policy = null,
        double requestsPerSecond = 60,
        double unseenFraction = 0.2,
        IReadOnlyList<DemoStep>? steps = null,
        TimeSpan? timeoutPerVersion = null,
        CancellationToken cancellationToken = default)
    {
        model ??= await FreshModelNameAsync(api, cancellationToken);
        policy ??= Policy();
        var timeout = timeoutPerVersion ?? TimeSpan.FromSeconds(240);
        var (train, test) = SampleDatasets.Digits();
        await store.PutDatasetAsync(model, Dataset, test, cancellationToken);
        LoadGenerator? load = null;
        var outcomes = new List<VersionOutcome>();
        var before = new LoadSummary(0, 0, new Dictionary<string, long>(), new Dictionary<string, long>(), 0, TimeSpan.Zero, new Dictionary<string, long>());
        try
        {
            foreach (var step in steps ?? Steps)
            {
                log($"push {model} {step.Version}: {step.Story}");
                var clock = Stopwatch.StartNew();
                using (var bytes = new MemoryStream(step.Build(train)))
                {
                    await store.UploadModelAsync(model, step.Version, bytes, new Manifest { Dataset = Dataset, Policy = (JsonObject)policy.DeepClone() }, cancellationToken: cancellationToken);
                }
                var detail = await WaitFinalAsync(api, model, step.Version, timeout, (stage, reason) =>
                    log($"  {step.Version}: {stage}{(reason.Length > 0 ? " — " + reason : "")}"), cancellationToken);
                var record = detail["version"] as JsonObject ?? [];
                var stage = ModelView.Text(record["stage"]);
                if (load is null && stage == "production")
                {
                    // Callers arrive once there is something to call and the worker serves it.
                    await WaitServableAsync(api, model, test.X, timeout, cancellationToken);
                    load = new LoadGenerator(api.Settings.WorkerUrl, model, test.X, SampleDatasets.FeatureMax, api.Settings.Key, unseenFraction, requestsPerSecond).Start();
                    before = load.Summary();
                }
                var now = load?.Summary() ?? before;
                outcomes.Add(new VersionOutcome(
                    step.Version,
                    step.Story,
                    stage,
                    ModelView.Text(record["reason"]),
                    clock.Elapsed,
                    now.Served.GetValueOrDefault(step.Version) - before.Served.GetValueOrDefault(step.Version),
                    now.FailedByVersion.GetValueOrDefault(step.Version) - before.FailedByVersion.GetValueOrDefault(step.Version),
                    (detail["reports"] as JsonArray ?? []).Select(r => ModelView.Text(r)).ToList(),
                    step.Expected.Contains(stage)));
                before = now;
            }
        }
        finally
        {
            if (load is not null)
            {
                before = await load.StopAsync();
                await load.DisposeAsync();
            }
        }
        return new DemoResult(model, outcomes, before);
    }

    /// <summary>
    /// <paramref name="baseName"/>, or <c>-2</c>, <c>-3</c>…: the first model with no versions yet.
    /// Versions are immutable, so a repeated demo tells its story on a new model instead of failing.
    /// </summary>
    public static async Task<string> FreshModelNameAsync(LeptonApiClient api, CancellationToken cancellationToken, string baseName = DefaultModel)
    {
        for (var n = 1; n < 1000; n++)
        {
            var name = n == 1 ? baseName : $"{baseName}-{n}";
            try
            {
                await api.ModelAsync(name, cancellationToken);
            }
            catch (ApiException error) when (error.Status == 404)
            {
                return name;
            }
        }
        throw new ConflictException($"models {baseName} to {baseName}-999 all exist; use a fresh stack (`make clean`)");
    }

    /// <summary>Polls the API until the version reaches a final stage; returns its detail.</summary>
    public static async Task<JsonObject> WaitFinalAsync(LeptonApiClient api, string model, string version, TimeSpan timeout, Action<string, string>? onStage, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (true)
        {
            JsonObject? detail = null;
            try
            {
                detail = await api.VersionAsync(model, version, cancellationToken);
            }
            catch (ApiException error) when (error.Status == 404)
            {
                // Not registered yet: the watcher and the blob trigger are on their way.
            }
            if (detail?["version"] is JsonObject record)
            {
                var stage = ModelView.Text(record["stage"]);
                if (stage != last)
                {
                    onStage?.Invoke(stage, ModelView.Text(record["reason"]));
                    last = stage;
                }
                // The run itself must have ended too: the stage turns final a moment before the
                // traffic phase's report is written (and a promotion bakes, 1 s here, after it).
                if (stage is "production" or "rejected" or "rolled_back"
                    && ModelView.Text(detail["lifecycle"]?["runtime_status"]) is not ("Running" or "Pending"))
                {
                    return detail;
                }
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new NotReadyException($"{model} {version} did not reach a final stage within {timeout.TotalSeconds:0} s (last stage {(last.Length > 0 ? last : "not registered")}); see `lepton watch {model}`");
            }
            await Task.Delay(300, cancellationToken);
        }
    }

    /// <summary>Blocks until the worker answers an inference for the model (routes reached it, warm).</summary>
    public static async Task WaitServableAsync(LeptonApiClient api, string model, NumericArray rows, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var width = (int)rows.RowSize;
        var body = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input",
                ["shape"] = new JsonArray(1, width),
                ["datatype"] = "FP32",
                ["data"] = new JsonArray(rows.Values.Take(width).Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            }),
        };
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                await api.InferAsync(model, body, cancellationToken: cancellationToken);
                return;
            }
            catch (ApiException error) when (DateTime.UtcNow < deadline)
            {
                _ = error;
                await Task.Delay(200, cancellationToken);
            }
        }
    }

    private static HashSet<string> Set(params string[] stages) => new(stages, StringComparer.Ordinal);
}
