using System.Diagnostics;
using System.Text.Json.Nodes;
using Lepton.Cli.Api;
using Lepton.Cli.Demo;
using Lepton.Cli.Samples;
using Lepton.Shared.Models;

namespace Lepton.E2E.Tests.Harness;

/// <summary>A version's detail from the API, read the way the assertions need it.</summary>
public sealed record VersionDetail(JsonObject Json)
{
    public string Stage => Text(Json["version"]?["stage"]);

    public string Reason => Text(Json["version"]?["reason"]);

    public JsonObject? Status => Json["lifecycle"]?["custom_status"] as JsonObject;

    public string RuntimeStatus => Text(Json["lifecycle"]?["runtime_status"]);

    public string Phase => Text(Status?["phase"]);

    public int Step => (int?)Status?["step"]?.GetValue<double>() ?? 0;

    public int WeightBp => (int?)Status?["weight_bp"]?.GetValue<double>() ?? 0;

    public IReadOnlyList<string> Reports => (Json["reports"] as JsonArray ?? []).Select(r => Text(r)).ToList();

    public bool IsFinal => Stage is "production" or "rejected" or "rolled_back" or "superseded";

    public override string ToString() => $"stage {Stage}, phase {Phase}, step {Step}, weight {WeightBp} bp, runtime {RuntimeStatus}: {Reason}";

    private static string Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
}

/// <summary>Uploads versions the way a user's push does and waits on what the lifecycle does with them.</summary>
public static class Lifecycles
{
    public const string Dataset = DemoScenario.Dataset;

    private static readonly Lazy<(Dataset Train, Dataset Test)> Digits = new(() => SampleDatasets.Digits());

    public static Dataset Train => Digits.Value.Train;

    public static Dataset Test => Digits.Value.Test;

    /// <summary>The demo's compressed policy with <paramref name="changes"/> on top.</summary>
    public static JsonObject Policy(JsonObject? changes = null, double windowS = 4)
    {
        var policy = DemoScenario.Policy(windowS);
        foreach (var (key, value) in changes ?? [])
        {
            policy[key] = value?.DeepClone();
        }
        return policy;
    }

    /// <summary>Uploads the dataset the versions are evaluated on.</summary>
    public static Task PutDatasetAsync(ModelStore store, string model, CancellationToken cancellationToken) =>
        store.PutDatasetAsync(model, Dataset, Test, cancellationToken);

    /// <summary>Uploads a model blob with its manifest (which starts its lifecycle through the watcher).</summary>
    public static async Task UploadAsync(ModelStore store, string model, string version, byte[] onnx, JsonObject policy, CancellationToken cancellationToken)
    {
        using var bytes = new MemoryStream(onnx);
        await store.UploadModelAsync(model, version, bytes, new Manifest { Dataset = Dataset, Policy = policy }, cancellationToken: cancellationToken);
    }

    /// <summary>Polls the version's detail until <paramref name="until"/> holds; throws with the last detail seen when it does not in time.</summary>
    public static async Task<VersionDetail> WaitAsync(
        LeptonApiClient api, string model, string version, Func<VersionDetail, bool> until, TimeSpan within, CancellationToken cancellationToken, string? what = null)
    {
        var clock = Stopwatch.StartNew();
        VersionDetail? last = null;
        while (true)
        {
            try
            {
                last = new VersionDetail(await api.VersionAsync(model, version, cancellationToken));
                if (until(last))
                {
                    return last;
                }
            }
            catch (ApiException error) when (error.Status is 404 or 0)
            {
                // Not registered yet (the watcher is on its way), or the stack restarting.
            }
            if (clock.Elapsed > within)
            {
                throw new TimeoutException($"{model} {version}: {what ?? "the awaited state"} not reached within {within.TotalSeconds:0} s; last seen: {last?.ToString() ?? "not registered"}");
            }
            await Task.Delay(250, cancellationToken);
        }
    }

    /// <summary>Waits for a final stage.</summary>
    public static Task<VersionDetail> WaitFinalAsync(LeptonApiClient api, string model, string version, TimeSpan within, CancellationToken cancellationToken) =>
        WaitAsync(api, model, version, d => d.IsFinal, within, cancellationToken, "a final stage");

    /// <summary>Uploads a first version and waits until it is production and the worker serves it.</summary>
    public static async Task SeedProductionAsync(StackProcess stack, string model, CancellationToken cancellationToken)
    {
        using var api = stack.Client();
        await PutDatasetAsync(stack.Store, model, cancellationToken);
        await UploadAsync(stack.Store, model, "1.0.0", SampleDatasets.WeakClassifier(Train), Policy(), cancellationToken);
        var detail = await WaitFinalAsync(api, model, "1.0.0", TimeSpan.FromSeconds(90), cancellationToken);
        Assert.True(detail.Stage == "production", detail.ToString());
        for (var worker = 0; worker < stack.Ports.Workers; worker++)
        {
            using var client = stack.Client(worker);
            await DemoScenario.WaitServableAsync(client, model, Test.X, TimeSpan.FromSeconds(60), cancellationToken);
        }
    }

    /// <summary>One row of the dataset, as the <c>--data</c> of <c>lepton infer</c>.</summary>
    public static string RowJson(int row = 0) =>
        "[[" + string.Join(", ", Test.X.Values.Skip(row * SampleDatasets.Features).Take(SampleDatasets.Features).Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]]";
}
