using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Lepton.Functions.Triggers;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Lepton.Functions.Tests.Http;

/// <summary>Racing operators and events have defined outcomes: one of two conflicting commands wins, repeats are idempotent, starts and events run one lifecycle.</summary>
public sealed class RacingOperatorsTests(AzuriteFixture azurite) : Scenario(azurite)
{
    private async Task<(HttpStatusCode Status, JsonNode? Body)> PostAsync(string path, JsonNode body, string key = "ci")
    {
        using var http = Host.Http(key);
        var response = await http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), Token);
        var text = await response.Content.ReadAsStringAsync(Token);
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    private async Task<string> StartOverHttpAsync(string version, JsonObject policy)
    {
        var started = await PostAsync($"/api/models/{Model}/versions/{version}/lifecycle", new JsonObject { ["policy"] = policy });
        Assert.Equal(HttpStatusCode.Accepted, started.Status);
        return started.Body!["id"]!.GetValue<string>();
    }

    private Task<(HttpStatusCode Status, JsonNode? Body)> CommandAsync(string version, string action, string key, string reason = "") =>
        PostAsync($"/api/models/{Model}/versions/{version}/{action}", new JsonObject { ["reason"] = reason }, key);

    /// <summary>A patch whose first canary step lasts long enough to send commands to.</summary>
    private static JsonObject Slow() => Fast(("window_s", 60.0), ("check_interval_s", 20.0));

    [Fact(Timeout = 180_000)]
    public async Task Of_promote_and_rollback_sent_at_once_one_wins_and_the_other_gets_409_naming_the_winning_state()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        await UploadAsync("1.0.1", Good);
        var instance = await StartOverHttpAsync("1.0.1", Slow());
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);

        var answers = await Task.WhenAll(
            Task.Run(() => CommandAsync("1.0.1", "promote", "alice", "ship it"), Token),
            Task.Run(() => CommandAsync("1.0.1", "rollback", "bob", "errors"), Token));

        var won = Assert.Single(answers, a => a.Status == HttpStatusCode.Accepted);
        var lost = Assert.Single(answers, a => a.Status == HttpStatusCode.Conflict);
        var winner = won.Body!["sent"]!["action"]!.GetValue<string>();
        var expectedStage = winner == "promote" ? "production" : "rolled_back";
        var detail = lost.Body!["detail"]!.GetValue<string>();
        if (lost.Body["code"]!.GetValue<string>() == "command_conflict")
        {
            Assert.Contains($"{winner} by key:{(winner == "promote" ? "alice" : "bob")} was accepted first (in stage 'canary')", detail, StringComparison.Ordinal);
            Assert.Contains($"so the lifecycle goes to '{expectedStage}'", detail, StringComparison.Ordinal);
        }
        else
        {
            // The winner's run had already ended when the loser arrived: the answer names the final stage.
            Assert.Contains($"stage '{expectedStage}'", detail, StringComparison.Ordinal);
        }
        var outcome = await Host.WaitDoneAsync(instance);
        AssertOutcome(expectedStage, outcome);
        Assert.Single(await Host.Registry.HistoryAsync(Model, "1.0.1", Token), e => e.From == "canary");

        // After the end: 409 naming the final stage.
        var late = await CommandAsync("1.0.1", winner == "promote" ? "rollback" : "promote", "carol");
        Assert.Equal(HttpStatusCode.Conflict, late.Status);
        Assert.Contains($"no running lifecycle (it is Completed, stage '{expectedStage}')", late.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_repeated_decisive_command_is_accepted_once_and_acted_on_once()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        await UploadAsync("1.0.1", Good);
        var instance = await StartOverHttpAsync("1.0.1", Slow());
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);

        var first = await CommandAsync("1.0.1", "rollback", "alice", "errors");
        var again = await CommandAsync("1.0.1", "abort", "bob", "pager"); // the same decision

        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        if (again.Status == HttpStatusCode.Accepted)
        {
            Assert.True(again.Body!["duplicate"]!.GetValue<bool>());
            Assert.Equal("rollback", again.Body["sent"]!["action"]!.GetValue<string>()); // the command that was sent, once
        }
        else
        {
            // The rollback had already ended the run.
            Assert.Equal(HttpStatusCode.Conflict, again.Status);
            Assert.Contains("stage 'rolled_back'", again.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }
        var outcome = await Host.WaitDoneAsync(instance);
        Assert.Equal(("rolled_back", "rolled back by operator key:alice: errors"), (outcome.Outcome, outcome.Reason));
        Assert.Single(await Host.Registry.HistoryAsync(Model, "1.0.1", Token), e => e.To == "rolled_back");
    }

    [Fact(Timeout = 120_000)]
    public async Task Concurrent_http_starts_of_one_version_run_one_lifecycle()
    {
        await UploadAsync("1.0.0", Good);

        var starts = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Task.Run(
            () => PostAsync($"/api/models/{Model}/versions/1.0.0/lifecycle", new JsonObject { ["policy"] = Fast() }, key: $"caller-{i}"), Token)));

        Assert.All(starts, s => Assert.Equal(HttpStatusCode.Accepted, s.Status));
        var instance = Assert.Single(starts.Select(s => s.Body!["id"]!.GetValue<string>()).Distinct());
        AssertOutcome("production", await Host.WaitDoneAsync(instance));
        var history = await Host.Registry.HistoryAsync(Model, "1.0.0", Token);
        Assert.Single(history, e => e.Kind == AuditKinds.Registered);
        Assert.Single(history, e => e.To == "validating");
        Assert.Single(history, e => e.To == "production");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_blob_event_for_an_older_version_arriving_after_a_newer_one_was_promoted_is_refused_not_rolled_out()
    {
        var uploads = Host.Services.GetRequiredService<ModelUploads>();
        await UploadAsync("1.0.1", Good, policy: Fast());
        await UploadAsync("1.0.0", Good, policy: Fast());
        // 1.0.1's event arrives first (Event Grid does not promise order), and its run promotes it.
        var newer = await uploads.HandleAsync(Host.Client, $"models/{Model}/1.0.1/model.onnx", Token);
        AssertOutcome("production", await Host.WaitDoneAsync(newer!));

        var older = await uploads.HandleAsync(Host.Client, $"models/{Model}/1.0.0/model.onnx", Token);
        var duplicate = await uploads.HandleAsync(Host.Client, $"models/{Model}/1.0.0/model.onnx", Token);
        var outcome = await Host.WaitDoneAsync(older!);

        Assert.Equal(older, duplicate);
        AssertOutcome("rejected", outcome);
        Assert.Contains("1.0.0 is older than the production version 1.0.1: a rollout only moves forward", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("1.0.1", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal(Stage.Production, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).Stage);
        Assert.Empty(await RouteEventsNamingAsync("1.0.0"));
        Assert.Single(await Host.Registry.HistoryAsync(Model, "1.0.0", Token), e => e.Kind == AuditKinds.Registered);
    }
}
