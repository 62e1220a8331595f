using System.Text.Json.Nodes;
using Lepton.Functions.Triggers;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>Duplicate events and repeated starts find the same lifecycle; a restart resumes what was running.</summary>
public sealed class StartAndResumeTests(AzuriteFixture azurite) : Scenario(azurite)
{
    [Fact(Timeout = 120_000)]
    public async Task Repeated_starts_never_run_a_second_lifecycle()
    {
        var sha = await UploadAsync("1.0.0", Good);
        var input = new Functions.Lifecycle.LifecycleInput(Model, "1.0.0", sha, Fast(), "test");

        var first = await Host.Starter.StartAsync(Host.Client, input, Token);
        var second = await Host.Starter.StartAsync(Host.Client, input, Token);

        Assert.True(first.Started);
        Assert.False(second.Started);
        Assert.Equal(first.InstanceId, second.InstanceId);
        Assert.Equal($"lepton-{Model}-1.0.0-{sha[..16]}", first.InstanceId);
        await Host.WaitDoneAsync(first.InstanceId);
        Assert.False((await Host.Starter.StartAsync(Host.Client, input, Token)).Started); // a finished one is not run again
        Assert.Single(await Host.Registry.HistoryAsync(Model, "1.0.0", Token), e => e.To == "production");
    }

    [Fact(Timeout = 120_000)]
    public async Task The_blob_trigger_starts_once_per_upload_and_ignores_other_blobs()
    {
        await UploadAsync("1.0.0", Good, policy: Fast());
        var uploads = Host.Services.GetRequiredService<ModelUploads>();

        Assert.Null(await uploads.HandleAsync(Host.Client, $"models/{Model}/1.0.0/lepton.json", Token));
        Assert.Null(await uploads.HandleAsync(Host.Client, "models/Bad Name/1.0.0/model.onnx", Token));
        Assert.Null(await uploads.HandleAsync(Host.Client, $"models/{Model}/v1/model.onnx", Token));
        var first = await uploads.HandleAsync(Host.Client, $"models/{Model}/1.0.0/model.onnx", Token);
        var duplicate = await uploads.HandleAsync(Host.Client, $"/models/{Model}/1.0.0/model.onnx", Token); // Event Grid delivers at least once

        Assert.NotNull(first);
        Assert.Equal(first, duplicate);
        Assert.Equal("production", (await Host.WaitDoneAsync(first)).Outcome);
        Assert.Single(await Host.Registry.HistoryAsync(Model, "1.0.0", Token), e => e.Kind == AuditKinds.Registered);
        var registered = (await Host.Registry.HistoryAsync(Model, "1.0.0", Token)).Single(e => e.Kind == AuditKinds.Registered);
        Assert.Equal(ModelUploads.Actor, registered.Actor);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_lifecycle_started_for_other_bytes_than_the_stored_ones_touches_nothing()
    {
        await UploadAsync("1.0.0", Good);
        var instance = await Host.StartAsync(Model, "1.0.0", new string('a', 64), Fast());

        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("refused", outcome);
        Assert.Contains("start it again for the current file", outcome.Reason, StringComparison.Ordinal);
        Assert.Null(await Host.Registry.FindVersionAsync(Model, "1.0.0", Token));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_reconciler_resumes_a_version_left_mid_lifecycle()
    {
        var sha = await UploadAsync("1.0.0", Good);
        var stored = await Host.Store.FetchModelAsync(Model, "1.0.0", Token);
        await Host.Registry.RegisterVersionAsync(Model, "1.0.0", sha, stored.Size, stored.BlobPath, "test", cancellationToken: Token);
        await Host.Registry.TransitionAsync(Model, "1.0.0", Stage.Validating, "before a crash", "test", cancellationToken: Token);
        await Host.Registry.AnnotateAsync(Model, "1.0.0", policyOverrides: Fast(), cancellationToken: Token);

        var resumed = await Host.Starter.ResumeActiveAsync(Host.Client, [Model], Token);

        var instance = Assert.Single(resumed, id => id.Contains(Model, StringComparison.Ordinal));
        Assert.Equal("production", (await Host.WaitDoneAsync(instance)).Outcome);
        Assert.DoesNotContain(await Host.Starter.ResumeActiveAsync(Host.Client, [Model], Token), id => id.Contains(Model, StringComparison.Ordinal));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_restarted_stack_resumes_a_canary_with_the_policy_of_its_http_start()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        // Two steps and 3 s windows: the stop lands inside the first step, the resumed run finishes in seconds.
        var policy = Fast(("steps_bp", new JsonArray(2500, 10000)), ("window_s", 3.0), ("check_interval_s", 1.0));
        await UploadAsync("1.0.1", Good);
        string instance;
        using (var http = Host.Http("ci"))
        {
            var response = await http.PostAsync(
                $"/api/models/{Model}/versions/1.0.1/lifecycle",
                new StringContent(new JsonObject { ["policy"] = policy.DeepClone() }.ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
                Token);
            Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
            instance = JsonNode.Parse(await response.Content.ReadAsStringAsync(Token))!["id"]!.GetValue<string>();
        }
        // Recorded at the start, so a command sent right away finds the run.
        Assert.Equal(instance, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).InstanceId);
        await Host.WaitStatusAsync(instance, s => s.WeightBp == 2500);
        await Host.DisposeAsync(); // the in-memory backend forgets every orchestration
        var record = await new ModelRegistry(Azurite.Clients, TimeProvider.System).GetVersionAsync(Model, "1.0.1", Token);
        Assert.Equal(Stage.Canary, record.Stage);
        Assert.True(JsonNode.DeepEquals(policy, record.PolicyOverrides));

        var restarted = await LifecycleHost.StartAsync(Azurite);
        Host = restarted; // the scenario disposes the host it holds
        var resumed = await restarted.Starter.ResumeActiveAsync(restarted.Client, [Model], Token);
        Assert.Contains(instance, resumed);
        var metadata = await restarted.Client.GetInstanceAsync(instance, getInputsAndOutputs: true, Token);
        var input = metadata!.ReadInputAs<Functions.Lifecycle.LifecycleInput>()!;
        Assert.True(JsonNode.DeepEquals(policy, input.Overrides));
        Assert.Equal("reconciler", input.Actor);
        var outcome = await restarted.WaitDoneAsync(instance);

        AssertOutcome("production", outcome);
        var weights = (await restarted.Store.GetReportAsync(Model, "1.0.1", "canary", Token))["steps"]!.AsArray().Select(s => s!["weight_bp"]!.GetValue<int>()).ToHashSet();
        Assert.Subset(new HashSet<int> { 2500, 10000 }, weights); // the start body's steps, not the default 1 % → 100 %
        Assert.Equal("1.0.1", (await restarted.Registry.GetRoutesAsync(Model, Token)).Production);
    }
}
