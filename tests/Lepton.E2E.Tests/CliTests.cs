using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.E2E.Tests.Harness;
using Lepton.Shared.Models;
using Lepton.Testing;

namespace Lepton.E2E.Tests;

/// <summary>One stack for the CLI tests, with a model whose first version is in production.</summary>
public sealed class CliStackFixture : IAsyncLifetime
{
    public StackProcess Stack { get; private set; } = null!;

    /// <summary>A model with 1.0.0 in production, which the read-only tests look at.</summary>
    public string Model { get; } = TestNames.Model("cli");

    /// <summary>A folder for the files a user pushes.</summary>
    public string Files { get; } = Directory.CreateTempSubdirectory("lepton-e2e-files-").FullName;

    public async ValueTask InitializeAsync()
    {
        Stack = await StackProcess.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        await Lifecycles.SeedProductionAsync(Stack, Model, TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await Stack.DisposeAsync();
        Directory.Delete(Files, recursive: true);
    }

    /// <summary>Writes <paramref name="bytes"/> to a file of <see cref="Files"/>; returns its path.</summary>
    public string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Files, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}

/// <summary>
/// The CLI verbs against a real stack, run as a user runs them (a subprocess in an 80-column
/// terminal, with the stack's URLs, data folder and storage in its environment): each works with
/// the key read from the data folder, each output fits 80 columns.
/// </summary>
public sealed class CliTests(CliStackFixture fixture) : IClassFixture<CliStackFixture>
{
    private StackProcess Stack => fixture.Stack;

    /// <summary>Runs a command that must succeed and fit an 80-column terminal.</summary>
    private async Task<CliResult> OkAsync(CancellationToken token, params string[] arguments)
    {
        var result = await Stack.LeptonAsync(arguments, cancellationToken: token);
        Assert.True(result.ExitCode == 0, result.ToString());
        result.AssertFitsIn80Columns();
        return result;
    }

    [Fact(Timeout = 60_000)]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task The_stack_keeps_its_key_0600_and_prints_where_everything_is()
    {
        var token = TestContext.Current.CancellationToken;
        var key = Path.Combine(Stack.DataDir, ApiKeyFile.FileName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        var output = Stack.Output;
        Assert.Contains($"{Stack.ApiUrl}/api", output);
        Assert.Contains($"{Stack.WorkerUrl(0)}/v2 (gRPC 127.0.0.1:{Stack.Ports.WorkerGrpc(0)})", output);
        Assert.Contains("(the CLI reads it)", output);
        Assert.Contains("reconciler: nothing to resume", output);
        // The key is never printed, only where it is.
        Assert.DoesNotContain(Stack.Key!, output);
        // Open: the health routes. Guarded: everything else.
        using var anonymous = Stack.Client(key: "");
        await anonymous.HealthAsync(token);
        var refused = await Assert.ThrowsAsync<Cli.Api.ApiException>(() => anonymous.ModelsAsync(token));
        Assert.Equal(401, refused.Status);
    }

    [Fact(Timeout = 180_000)]
    public async Task Push_uploads_model_manifest_and_dataset_and_follows_each_lifecycle_to_its_end()
    {
        var token = TestContext.Current.CancellationToken;
        var model = TestNames.Model("push");
        var manifest = fixture.Write($"{model}.json", System.Text.Encoding.UTF8.GetBytes(
            new JsonObject { ["dataset"] = Lifecycles.Dataset, ["policy"] = Lifecycles.Policy() }.ToJsonString()));
        var dataset = fixture.Write($"{model}.npz", NpzDatasets.Write(Lifecycles.Test));
        var first = fixture.Write($"{model}-1.0.0.onnx", SampleDatasets.WeakClassifier(Lifecycles.Train));
        var better = fixture.Write($"{model}-1.1.0.onnx", SampleDatasets.GoodClassifier(Lifecycles.Train));
        var narrower = fixture.Write($"{model}-1.1.1.onnx", SampleDatasets.NarrowerInput(Lifecycles.Train));

        // The dataset's name comes from the manifest; progress, then each stage as it happens.
        var pushed = await OkAsync(token, "push", model, "1.0.0", first, "--manifest", manifest, "--dataset-file", dataset);
        Assert.Contains($"dataset uploaded to datasets/{model}/{Lifecycles.Dataset}.npz", pushed.Text);
        Assert.Contains($"uploading {model} 1.0.0", pushed.Text);
        Assert.Contains($"stored models/{model}/1.0.0/model.onnx", pushed.Text);
        Assert.Contains($"{model} 1.0.0: production", pushed.Text);

        // Callers, so the canary has traffic to judge.
        using (var worker = Stack.Client())
        {
            await DemoScenario.WaitServableAsync(worker, model, Lifecycles.Test.X, TimeSpan.FromSeconds(60), token);
        }
        await using var callers = new LoadGenerator(Stack.WorkerUrl(), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, Stack.Key, unseenFraction: 0, requestsPerSecond: 40).Start();
        var canaried = await OkAsync(token, "push", model, "1.1.0", better, "--manifest", manifest);
        Assert.Contains($"{model} 1.1.0: canary", canaried.Text);
        Assert.Matches(@"canary [123]/3", canaried.Output);
        Assert.Contains($"{model} 1.1.0: production", canaried.Text);

        // A rollout that fails is a failed command, for scripts (like `kubectl rollout status`).
        var rejected = await Stack.LeptonAsync(["push", model, "1.1.1", narrower, "--manifest", manifest], cancellationToken: token);
        Assert.True(rejected.ExitCode == 3, rejected.ToString());
        Assert.Contains($"{model} 1.1.1: rejected", rejected.Text);
        rejected.AssertFitsIn80Columns();

        // Bad input is refused before anything is uploaded, with what to do.
        var unnamed = await Stack.LeptonAsync(["push", model, "1.2.0", better, "--dataset-file", dataset], cancellationToken: token);
        Assert.Equal(1, unnamed.ExitCode);
        Assert.Contains("--dataset-file needs a dataset name", unnamed.Text);
        var missing = await Stack.LeptonAsync(["push", model, "1.2.0", Path.Combine(fixture.Files, "nope.onnx")], cancellationToken: token);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.Text);
        var loose = await Stack.LeptonAsync(["push", model, "1.2", better], cancellationToken: token);
        Assert.Equal(1, loose.ExitCode);
        using var api = Stack.Client();
        var versions = (await api.ModelAsync(model, token))["versions"]!.AsArray().Select(v => v!["version"]!.GetValue<string>());
        Assert.Equal(["1.0.0", "1.1.0", "1.1.1"], versions.Order(StringComparer.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task Status_lists_the_models_shows_one_model_and_one_version()
    {
        var token = TestContext.Current.CancellationToken;
        var all = await OkAsync(token, "status");
        Assert.Contains($"{fixture.Model}: 1.0.0 production", all.Text);

        var model = await OkAsync(token, "status", fixture.Model);
        // One row per version, whole on one line (the reference wrapped one word per line at 80 columns).
        Assert.Contains(model.Lines, l => Regex.IsMatch(l, @"1\.0\.0\s+production\s+100%"));
        Assert.Contains("routes: production=1.0.0", model.Text);
        Assert.Contains("first version of the model", model.Text);

        var version = await OkAsync(token, "status", fixture.Model, "1.0.0");
        var json = JsonNode.Parse(version.Stdout)!;
        Assert.Equal("production", json["version"]!["stage"]!.GetValue<string>());
        Assert.Equal("Completed", json["lifecycle"]!["runtime_status"]!.GetValue<string>());
        Assert.DoesNotContain("\\u002B", version.Stdout);
    }

    [Fact(Timeout = 60_000)]
    public async Task History_shows_every_transition_oldest_first()
    {
        var token = TestContext.Current.CancellationToken;
        var history = await OkAsync(token, "history", fixture.Model);
        var lines = history.Lines;
        var validating = lines.ToList().FindIndex(l => l.Contains("registered → validating", StringComparison.Ordinal));
        var production = lines.ToList().FindIndex(l => l.Contains("evaluating → production", StringComparison.Ordinal));
        Assert.True(validating >= 0 && production > validating, history.ToString());
        Assert.Contains("blob-trigger", history.Text);
        Assert.Contains("promoted after evaluation", history.Text);
        var one = await OkAsync(token, "history", fixture.Model, "1.0.0");
        Assert.Contains("evaluating → production", one.Text);
    }

    [Fact(Timeout = 60_000)]
    public async Task Routes_are_shown_and_changed_with_set()
    {
        var token = TestContext.Current.CancellationToken;
        var shown = await OkAsync(token, "routes", fixture.Model);
        Assert.StartsWith("routes: production=1.0.0", shown.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("sticky", shown.Stdout);

        var set = await OkAsync(token, "routes", fixture.Model, "--set", "sticky_header=x-user-id", "--reason", "sticky callers");
        Assert.Contains("sticky=x-user-id", set.Stdout);
        Assert.Contains("sticky=x-user-id", (await OkAsync(token, "routes", fixture.Model)).Stdout);
        var history = await OkAsync(token, "history", fixture.Model);
        Assert.Contains("sticky callers", history.Text);

        var cleared = await OkAsync(token, "routes", fixture.Model, "--set", "sticky_header=null");
        Assert.DoesNotContain("sticky", cleared.Stdout);

        var unknown = await Stack.LeptonAsync(["routes", fixture.Model, "--set", "weight=5"], cancellationToken: token);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("use key=value with key one of", unknown.Text);
        var refused = await Stack.LeptonAsync(["routes", fixture.Model, "--set", "candidate=9.9.9", "--set", "candidate_weight_bp=500"], cancellationToken: token);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("9.9.9", refused.Text);
        refused.AssertFitsIn80Columns();
    }

    [Fact(Timeout = 60_000)]
    public async Task Infer_takes_rows_or_a_full_v2_body_routed_or_pinned()
    {
        var token = TestContext.Current.CancellationToken;
        var rows = await OkAsync(token, "infer", fixture.Model, "--data", Lifecycles.RowJson());
        var answer = JsonNode.Parse(rows.Stdout)!;
        Assert.Equal("1.0.0", answer["model_version"]!.GetValue<string>());
        Assert.Equal(["label", "probabilities"], answer["outputs"]!.AsArray().Select(o => o!["name"]!.GetValue<string>()));

        var body = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input",
                ["datatype"] = "FP32",
                ["shape"] = new JsonArray(2, SampleDatasets.Features),
                ["data"] = new JsonArray(Lifecycles.Test.X.Values.Take(2 * SampleDatasets.Features).Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            }),
        };
        var full = await OkAsync(token, "infer", fixture.Model, "--data", body.ToJsonString(), "--version", "1.0.0");
        var outputs = JsonNode.Parse(full.Stdout)!["outputs"]!.AsArray();
        Assert.Equal(2, outputs.Single(o => o!["name"]!.GetValue<string>() == "label")!["data"]!.AsArray().Count);

        var ragged = await Stack.LeptonAsync(["infer", fixture.Model, "--data", "[[1, 2], [3]]"], cancellationToken: token);
        Assert.Equal(1, ragged.ExitCode);
        Assert.Contains("rectangular", ragged.Text);
        var wrongWidth = await Stack.LeptonAsync(["infer", fixture.Model, "--data", "[[1, 2, 3]]"], cancellationToken: token);
        Assert.Equal(1, wrongWidth.ExitCode);
        Assert.Contains("error:", wrongWidth.Text);
        wrongWidth.AssertFitsIn80Columns();
    }

    [Fact(Timeout = 60_000)]
    public async Task Watch_prints_each_refresh_and_stops_after_count()
    {
        var token = TestContext.Current.CancellationToken;
        var watched = await OkAsync(token, "watch", fixture.Model, "--count", "2", "--interval", "0.2");
        Assert.Equal(2, watched.Lines.Count(l => l.Contains($"model {fixture.Model}", StringComparison.Ordinal)));
        Assert.Equal(2, watched.Lines.Count(l => l.StartsWith("routes: production=1.0.0", StringComparison.Ordinal)));
    }

    [Fact(Timeout = 150_000)]
    public async Task Operator_commands_steer_a_running_lifecycle_and_409_once_it_has_ended()
    {
        var token = TestContext.Current.CancellationToken;
        var model = TestNames.Model("ops");
        await Lifecycles.SeedProductionAsync(Stack, model, token);
        using var api = Stack.Client();
        // Waits for approval, then long windows and bake, so each command lands in the phase meant.
        var slow = Lifecycles.Policy(new JsonObject { ["approval_required"] = true, ["bake_s"] = 120.0, ["steps_bp"] = new JsonArray(5000, 10_000) }, windowS: 120);
        await Lifecycles.UploadAsync(Stack.Store, model, "1.1.0", SampleDatasets.GoodClassifier(Lifecycles.Train), slow, token);
        await Lifecycles.WaitAsync(api, model, "1.1.0", d => d.Phase == "awaiting_approval", TimeSpan.FromSeconds(60), token, "awaiting approval");

        var approved = await OkAsync(token, "approve", model, "1.1.0", "--reason", "looks good");
        Assert.Contains($"approve sent to {model} 1.1.0", approved.Text);
        await Lifecycles.WaitAsync(api, model, "1.1.0", d => d is { Stage: "canary", Step: >= 1 }, TimeSpan.FromSeconds(60), token, "the first canary step");

        await OkAsync(token, "promote", model, "1.1.0", "--reason", "ship it");
        await Lifecycles.WaitAsync(api, model, "1.1.0", d => d.Stage == "production", TimeSpan.FromSeconds(60), token, "production");
        // During the bake a rollback reinstates the previous version.
        await OkAsync(token, "rollback", model, "1.1.0", "--reason", "changed my mind");
        var rolledBack = await Lifecycles.WaitAsync(api, model, "1.1.0", d => d.Stage == "rolled_back" && d.RuntimeStatus == "Completed", TimeSpan.FromSeconds(60), token, "rolled back");
        Assert.Contains("changed my mind", rolledBack.Reason);
        Assert.Equal("1.0.0", (await api.ModelAsync(model, token))["routes"]!["production"]!.GetValue<string>());

        // Nothing runs for 1.1.0 any more: 409, said so, and what to do instead.
        var ended = await Stack.LeptonAsync(["abort", model, "1.1.0"], cancellationToken: token);
        Assert.True(ended.ExitCode == 1, ended.ToString());
        Assert.Contains("no running lifecycle", ended.Text);
        ended.AssertFitsIn80Columns();

        // abort while a version waits for its approval: rejected before any traffic.
        await Lifecycles.UploadAsync(Stack.Store, model, "1.2.0", SampleDatasets.GoodClassifier(Lifecycles.Train), slow, token);
        await Lifecycles.WaitAsync(api, model, "1.2.0", d => d.Phase == "awaiting_approval", TimeSpan.FromSeconds(60), token, "awaiting approval");
        await OkAsync(token, "abort", model, "1.2.0", "--reason", "not this one");
        var aborted = await Lifecycles.WaitFinalAsync(api, model, "1.2.0", TimeSpan.FromSeconds(60), token);
        Assert.Equal("rejected", aborted.Stage);
        var history = await OkAsync(token, "history", model, "1.2.0");
        Assert.Contains("key:local", history.Text);
    }

    [Fact(Timeout = 60_000)]
    public async Task Demo_without_a_stack_and_no_start_says_how_to_start_one()
    {
        var token = TestContext.Current.CancellationToken;
        var nowhere = $"http://127.0.0.1:{Azurite.FreePort()}";
        var demo = await Stack.LeptonAsync(["demo", "--no-start"], new Dictionary<string, string?> { ["LEPTON_API_URL"] = nowhere }, cancellationToken: token);
        Assert.Equal(1, demo.ExitCode);
        Assert.Contains("is not reachable", demo.Text);
        Assert.Contains("make run", demo.Text);
        demo.AssertFitsIn80Columns();
    }

    /// <summary>Every command that talks to the API or a worker, as a user types it.</summary>
    public static TheoryData<string> GuardedCommands() =>
    [
        "status", "status {model}", "status {model} 1.0.0", "history {model}", "routes {model}",
        "routes {model} --set sticky_header=x-user", "approve {model} 1.0.0", "promote {model} 1.0.0",
        "rollback {model} 1.0.0", "abort {model} 1.0.0", "infer {model} --data [[1]]", "watch {model} --count 1",
        "push {model} 9.0.0 {file}",
    ];

    [Theory(Timeout = 60_000)]
    [MemberData(nameof(GuardedCommands))]
    public async Task Each_command_is_refused_with_a_wrong_key_and_says_where_the_key_is(string command)
    {
        var token = TestContext.Current.CancellationToken;
        var result = await Stack.LeptonAsync([.. Arguments(command), "--key", "wrong-key-0123456789"], cancellationToken: token);
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("refused the request (401)", result.Text);
        Assert.Contains("the key sent is not this stack's", result.Text);
        Assert.DoesNotContain(Stack.Key!, result.Text);
        result.AssertFitsIn80Columns();
        await AssertNothingPushedAsync(command);
    }

    [Theory(Timeout = 60_000)]
    [MemberData(nameof(GuardedCommands))]
    public async Task Each_command_is_refused_without_the_key_and_says_how_to_find_it(string command)
    {
        var token = TestContext.Current.CancellationToken;
        // The CLI looks for the key in LEPTON_DEV_DATA_DIR: here a folder that has none.
        var elsewhere = Directory.CreateTempSubdirectory("lepton-e2e-nokey-").FullName;
        try
        {
            var result = await Stack.LeptonAsync(Arguments(command), new Dictionary<string, string?> { ["LEPTON_DEV_DATA_DIR"] = elsewhere }, cancellationToken: token);
            Assert.True(result.ExitCode == 1, result.ToString());
            Assert.Contains("refused the request (401)", result.Text);
            Assert.Contains("no key was sent", result.Text);
            Assert.Contains("LEPTON_DEV_DATA_DIR", result.Text);
            result.AssertFitsIn80Columns();
            await AssertNothingPushedAsync(command);
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    private string[] Arguments(string command)
    {
        var file = fixture.Write("refused.onnx", SampleDatasets.GoodClassifier(Lifecycles.Train));
        return command.Replace("{model}", fixture.Model, StringComparison.Ordinal).Replace("{file}", file, StringComparison.Ordinal).Split(' ');
    }

    // A refused push uploads nothing: the upload would start a lifecycle nobody follows.
    private async Task AssertNothingPushedAsync(string command)
    {
        if (command.StartsWith("push", StringComparison.Ordinal))
        {
            var blob = Stack.Storage.Container(Lepton.Shared.Storage.StorageLayout.ModelsContainer).GetBlobClient($"{fixture.Model}/9.0.0/model.onnx");
            Assert.False(await blob.ExistsAsync(TestContext.Current.CancellationToken));
        }
    }
}
