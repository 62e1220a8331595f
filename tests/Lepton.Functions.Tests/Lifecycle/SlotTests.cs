using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>One version of a model in shadow or canary at a time: the next one waits, bounded, and is never refused outright.</summary>
public sealed class SlotTests(AzuriteFixture azurite) : Scenario(azurite)
{
    private static System.Text.Json.Nodes.JsonObject Slow() => Fast(("window_s", 60.0), ("check_interval_s", 20.0));

    /// <summary>1.0.1 started with <paramref name="policy"/> and canarying at 50 %: it holds the rollout slot.</summary>
    private async Task<string> CanaryHoldingTheSlotAsync(System.Text.Json.Nodes.JsonObject policy)
    {
        var first = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), policy);
        await Host.WaitStatusAsync(first, s => s.Stage == Stage.Canary && s.WeightBp == 5000);
        return first;
    }

    /// <summary>1.0.2 started while another version holds the slot, once it waits for it.</summary>
    private async Task<string> WaitingForTheSlotAsync()
    {
        var second = await StartAsync("1.0.2", await UploadAsync("1.0.2", Good));
        await Host.WaitStatusAsync(second, s => s.Phase == LifecyclePhase.WaitingForSlot && s.WaitingFor is not null);
        return second;
    }

    [Fact(Timeout = 180_000)]
    public async Task A_second_version_waits_for_the_first_to_finish()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var first = await CanaryHoldingTheSlotAsync(Slow());
        var second = await StartAsync("1.0.2", await UploadAsync("1.0.2", Good));

        var waiting = await Host.WaitStatusAsync(second, s => s.WaitingFor is not null);
        Assert.Equal(("waiting for 1.0.1 to finish", Stage.Evaluating), (waiting.WaitingFor, waiting.Stage));
        await Host.SendAsync(first, OperatorAction.Promote, "looks good");

        Assert.Equal("production", (await Host.WaitDoneAsync(first)).Outcome);
        Assert.Equal("production", (await Host.WaitDoneAsync(second)).Outcome);
        Assert.Equal("1.0.2", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal(Stage.Superseded, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).Stage);
        // The second waited in evaluating and entered canary only after the first had left it.
        var entered = (await Host.Registry.HistoryAsync(Model, "1.0.2", Token)).Single(e => (e.From, e.To) == ("evaluating", "canary")).At;
        var left = (await Host.Registry.HistoryAsync(Model, "1.0.1", Token)).Single(e => (e.From, e.To) == ("canary", "production")).At;
        Assert.True(left <= entered);
        Assert.Equal([("evaluating", "canary"), ("canary", "production")], (await TransitionsAsync("1.0.2"))[^2..]);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_second_version_is_refused_when_the_slot_stays_busy()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var first = await CanaryHoldingTheSlotAsync(Fast(("window_s", 120.0), ("check_interval_s", 40.0)));

        var second = await RunAsync("1.0.2", Good, Fast(("slot_wait_timeout_s", 0.6)));

        Assert.Equal("rejected", second.Outcome);
        Assert.StartsWith("waited 0.6s for 1.0.1 to finish its rollout", second.Reason, StringComparison.Ordinal);
        Assert.Contains("only one version of a model may be in shadow or canary at a time", second.Reason, StringComparison.Ordinal);
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.2", Token);
        Assert.Equal((Stage.Rejected, second.Reason), (record.Stage, record.Reason));
        Assert.Equal(("evaluating", "rejected"), (await TransitionsAsync("1.0.2"))[^1]);
        // The first rollout's traffic was never touched by the refused one.
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)"1.0.1", 5000), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Empty(await RouteEventsNamingAsync("1.0.2"));
        await Host.SendAsync(first, OperatorAction.Abort, "test over");
        Assert.Equal("rolled_back", (await Host.WaitDoneAsync(first)).Outcome);
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_while_waiting_for_the_slot_happens_once_the_slot_frees()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var first = await CanaryHoldingTheSlotAsync(Slow());
        var second = await WaitingForTheSlotAsync();

        await Host.SendAsync(second, OperatorAction.Promote, "ship it");
        var queued = await Host.WaitStatusAsync(second, s => s.Reason.StartsWith("promote requested", StringComparison.Ordinal));
        // Promoting now would pull production out from under the first version's canary.
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)"1.0.1"), (routes.Production, routes.Candidate));
        Assert.Equal(Stage.Evaluating, queued.Stage);
        await Host.SendAsync(first, OperatorAction.Abort, "make way");

        Assert.Equal("rolled_back", (await Host.WaitDoneAsync(first)).Outcome);
        var outcome = await Host.WaitDoneAsync(second);
        Assert.Equal(("production", "promoted by operator alice: ship it"), (outcome.Outcome, outcome.Reason));
        Assert.Equal(("evaluating", "production"), (await TransitionsAsync("1.0.2"))[^1]);
        Assert.Equal("1.0.2", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
    }

    [Fact(Timeout = 180_000)]
    public async Task Abort_while_waiting_for_the_slot_rejects_and_names_the_wait()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var first = await CanaryHoldingTheSlotAsync(Slow());
        var second = await WaitingForTheSlotAsync();

        await Host.SendAsync(second, OperatorAction.Abort, "superseded by 1.0.3");
        var outcome = await Host.WaitDoneAsync(second);

        Assert.Equal(("rejected", "aborted by operator alice while waiting for 1.0.1 to finish: superseded by 1.0.3"), (outcome.Outcome, outcome.Reason));
        await Host.SendAsync(first, OperatorAction.Abort, "test over");
        await Host.WaitDoneAsync(first);
    }
}
