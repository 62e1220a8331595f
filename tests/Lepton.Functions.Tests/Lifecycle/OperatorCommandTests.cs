using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>Operator commands in every phase of a running lifecycle, as the command table says.</summary>
public sealed class OperatorCommandTests(AzuriteFixture azurite) : Scenario(azurite)
{
    /// <summary>A patch whose first canary step lasts long enough to act on.</summary>
    private static System.Text.Json.Nodes.JsonObject Slow() => Fast(("window_s", 60.0), ("check_interval_s", 20.0));

    [Fact(Timeout = 180_000)]
    public async Task Abort_mid_canary_rolls_back_and_the_audit_names_the_operator()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Slow());
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);

        await Host.SendAsync(instance, OperatorAction.Abort, "pager went off");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("rolled_back", "aborted by operator alice: pager went off"), (outcome.Outcome, outcome.Reason));
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null), (routes.Production, routes.Candidate));
        var last = (await Host.Registry.HistoryAsync(Model, "1.0.1", Token))[^1];
        Assert.Equal(("canary", "rolled_back", "alice"), (last.From, last.To, last.Actor));
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_mid_canary_promotes_now()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Slow());
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);

        await Host.SendAsync(instance, OperatorAction.Promote, "looks good");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("production", "promoted by operator alice: looks good"), (outcome.Outcome, outcome.Reason));
        Assert.DoesNotContain(10000, await CandidateWeightsAsync("1.0.1"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_rollback_during_the_bake_reinstates_the_previous_version()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("bake_s", 60.0)));
        var baking = await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.Baking);
        Assert.Equal((Stage.Production, "bake: rollback reinstates 1.0.0"), (baking.Stage, baking.WaitingFor));

        await Host.SendAsync(instance, OperatorAction.Rollback, "customers report bad digits");
        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("rolled_back", outcome);
        Assert.Contains("customers report bad digits", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("1.0.0", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal(Stage.Production, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
        Assert.Equal(Stage.RolledBack, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).Stage);
        Assert.Equal([("production", "superseded"), ("superseded", "production")], (await TransitionsAsync("1.0.0"))[^2..]);
        Assert.Equal("rolled_back", (await ReportAsync("1.0.1", "canary"))["outcome"]!.GetValue<string>());
    }

    [Fact(Timeout = 180_000)]
    public async Task A_duplicate_approve_during_the_bake_changes_nothing()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        const double BakeS = 3;
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("bake_s", BakeS)));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.Baking);

        await Host.SendAsync(instance, OperatorAction.Approve, "again");
        var seen = await Host.WaitStatusAsync(instance, s => s.LastCommand?.Action == OperatorAction.Approve);
        var outcome = await Host.WaitDoneAsync(instance);

        // The bake went on to its end: the reference ended it early on any command.
        Assert.Equal((LifecyclePhase.Baking, Stage.Production), (seen.Phase, seen.Stage));
        AssertOutcome("production", outcome);
        var metadata = await Host.Client.GetInstanceAsync(instance, cancellation: Token);
        var promotedAt = (await Host.Registry.HistoryAsync(Model, "1.0.1", Token)).Single(e => e.To == "production").At;
        Assert.True(metadata!.LastUpdatedAt - promotedAt >= TimeSpan.FromSeconds(BakeS - 0.5), $"the bake ended {(metadata.LastUpdatedAt - promotedAt).TotalSeconds:F1}s after the promotion");
        Assert.Equal(Stage.Superseded, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_during_the_warm_up_promotes_a_version_no_replica_has_warmed()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.NeverWarm["1.0.1"] = 0;
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("warmup_timeout_s", 60.0)));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.WarmingUp && s.WaitingFor?.StartsWith("warm-up", StringComparison.Ordinal) == true);

        await Host.SendAsync(instance, OperatorAction.Promote, "hotfix");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("production", "promoted by operator alice: hotfix"), (outcome.Outcome, outcome.Reason));
        Assert.Equal([0], await CandidateWeightsAsync("1.0.1"));
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_during_the_shadow_promotes_now()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("1.1.0", await UploadAsync("1.1.0", Good), Fast(("shadow_duration_s", 60.0), ("check_interval_s", 1.0)));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.Shadow);

        await Host.SendAsync(instance, OperatorAction.Promote);
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("production", "promoted by operator alice: promote requested by alice"), (outcome.Outcome, outcome.Reason));
        Assert.Equal(("shadow", "production"), (await TransitionsAsync("1.1.0"))[^1]);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.1.0", (string?)null), (routes.Production, routes.Shadow));
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_while_awaiting_approval_before_the_slot_promotes_straight_from_evaluating()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("2.0.0", await UploadAsync("2.0.0", Good), Fast(("shadow", false)));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.AwaitingApproval);

        await Host.SendAsync(instance, OperatorAction.Promote, "signed off elsewhere");
        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("production", outcome);
        Assert.Equal(("evaluating", "production"), (await TransitionsAsync("2.0.0"))[^1]);
        Assert.Empty(await CandidateWeightsAsync("2.0.0"));
    }

    [Fact(Timeout = 180_000)]
    public async Task An_ignored_command_does_not_count_a_whole_poll_interval_of_the_warm_up()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.NeverWarm["1.0.1"] = 0;
        // Polls every 10 s, times out after 4 s: the reference added a whole poll to its count
        // for every command that cut a wait short, so one stray command timed the warm-up out.
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("warmup_poll_s", 10.0), ("warmup_timeout_s", 4.0)));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.WarmingUp && s.WaitingFor is not null);
        var warming = DateTimeOffset.UtcNow;

        await Host.SendAsync(instance, OperatorAction.Approve);
        var seen = await Host.WaitStatusAsync(instance, s => s.LastCommand is not null);
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(Stage.Canary, seen.Stage); // still warming after the command
        AssertOutcome("rolled_back", outcome);
        Assert.Contains("not warm after 4s", outcome.Reason, StringComparison.Ordinal);
        var rolledBackAt = (await Host.Registry.HistoryAsync(Model, "1.0.1", Token))[^1].At;
        Assert.True(rolledBackAt - warming >= TimeSpan.FromSeconds(2.5), $"rolled back {(rolledBackAt - warming).TotalSeconds:F1}s into a 4 s warm-up");
    }
}
