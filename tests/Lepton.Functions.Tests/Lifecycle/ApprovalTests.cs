using Lepton.Functions.Lifecycle;
using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>Major versions need an approval: after the shadow, or before the slot when they have no shadow phase.</summary>
public sealed class ApprovalTests(AzuriteFixture azurite) : Scenario(azurite)
{
    private static bool AwaitingApproval(LifecycleStatus s) => s.WaitingFor?.StartsWith("approval", StringComparison.Ordinal) == true;

    [Fact(Timeout = 180_000)]
    public async Task A_major_version_shadows_then_waits_for_approval()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("2.0.0", Good);
        var instance = await StartAsync("2.0.0", sha);

        var waiting = await Host.WaitStatusAsync(instance, AwaitingApproval);
        Assert.Equal((Stage.Shadow, LifecyclePhase.AwaitingShadowApproval), (waiting.Stage, waiting.Phase));
        Assert.Null((await Host.Registry.GetRoutesAsync(Model, Token)).Candidate);
        await Host.SendAsync(instance, OperatorAction.Approve);
        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("production", outcome);
        Assert.Contains(("shadow", "canary"), await TransitionsAsync("2.0.0"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_major_version_nobody_approves_rolls_back_after_the_timeout()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();

        var outcome = await RunAsync("2.0.0", Good, Fast(("approval_timeout_s", 0.5)));

        Assert.Equal(("rolled_back", "no approval within 0.5s (major version)"), (outcome.Outcome, outcome.Reason));
        Assert.Null((await Host.Registry.GetRoutesAsync(Model, Token)).Shadow);
        Assert.Equal(("shadow", "rolled_back"), (await TransitionsAsync("2.0.0"))[^1]);
    }

    [Fact(Timeout = 180_000)]
    public async Task An_approval_required_without_shadow_times_out_as_rejected()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        // A patch has no shadow phase; the policy asks for an approve all the same.
        var outcome = await RunAsync("1.0.1", Good, Fast(("approval_required", true), ("approval_timeout_s", 0.5)));

        // It never took traffic, so it ends rejected (DESIGN §3), not rolled back.
        Assert.Equal(new LifecycleOutcome("rejected", Stage.Rejected, "no approval within 0.5s (policy approval_required)"), outcome);
        Assert.Equal(outcome.Reason, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).Reason);
        Assert.Equal([("validating", "evaluating"), ("evaluating", "rejected")], (await TransitionsAsync("1.0.1"))[^2..]);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, (string?)null), (routes.Production, routes.Candidate, routes.Shadow));
        Assert.Empty(await RouteEventsNamingAsync("1.0.1"));
    }

    [Theory(Timeout = 180_000)]
    [InlineData(OperatorAction.Rollback, "rolled back")]
    [InlineData(OperatorAction.Abort, "aborted")]
    public async Task A_major_version_without_shadow_stopped_while_awaiting_approval_is_rejected(OperatorAction action, string label)
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("2.0.0", Good);
        var instance = await StartAsync("2.0.0", sha, Fast(("shadow", false)));
        var waiting = await Host.WaitStatusAsync(instance, AwaitingApproval);
        Assert.Equal((Stage.Evaluating, LifecyclePhase.AwaitingApproval), (waiting.Stage, waiting.Phase));

        await Host.SendAsync(instance, action, "wrong export");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(new LifecycleOutcome("rejected", Stage.Rejected, $"{label} by operator alice: wrong export"), outcome);
        var last = (await Host.Registry.HistoryAsync(Model, "2.0.0", Token))[^1];
        Assert.Equal(("evaluating", "rejected", "alice", outcome.Reason), (last.From, last.To, last.Actor, last.Reason));
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, (string?)null), (routes.Production, routes.Candidate, routes.Shadow));
        Assert.Empty(await RouteEventsNamingAsync("2.0.0"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_major_version_without_shadow_is_approved_then_canaried()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("2.0.0", Good);
        var instance = await StartAsync("2.0.0", sha, Fast(("shadow", false)));
        await Host.WaitStatusAsync(instance, AwaitingApproval);

        await Host.SendAsync(instance, OperatorAction.Approve);

        Assert.Equal("production", (await Host.WaitDoneAsync(instance)).Outcome);
        Assert.Equal([("evaluating", "canary"), ("canary", "production")], (await TransitionsAsync("2.0.0"))[^2..]);
    }

    [Fact(Timeout = 180_000)]
    public async Task Promote_while_awaiting_approval_after_the_shadow_promotes_now()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("2.0.0", await UploadAsync("2.0.0", Good));
        await Host.WaitStatusAsync(instance, s => s.Phase == LifecyclePhase.AwaitingShadowApproval);

        await Host.SendAsync(instance, OperatorAction.Promote, "shadow was enough");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("production", "promoted by operator alice: shadow was enough"), (outcome.Outcome, outcome.Reason));
        Assert.Equal(("shadow", "production"), (await TransitionsAsync("2.0.0"))[^1]);
        Assert.Empty(await CandidateWeightsAsync("2.0.0"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_stray_command_does_not_restart_the_approval_clock()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("2.0.0", Good);
        var instance = await StartAsync("2.0.0", sha, Fast(("shadow", false), ("approval_timeout_s", 2.0)));
        await Host.WaitStatusAsync(instance, AwaitingApproval);
        var waitingSince = DateTimeOffset.UtcNow;

        // Commands approval ignores, for 3 s: had each restarted the clock, the timeout would come 5 s in.
        for (var i = 0; i < 8 && DateTimeOffset.UtcNow - waitingSince < TimeSpan.FromSeconds(3); i++)
        {
            await Host.SendAsync(instance, OperatorAction.Unknown);
            await Task.Delay(400, Token);
        }
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal("no approval within 2s (major version)", outcome.Reason);
        var rejectedAt = (await Host.Registry.HistoryAsync(Model, "2.0.0", Token))[^1].At;
        Assert.True(rejectedAt - waitingSince < TimeSpan.FromSeconds(4.5), $"the timeout came {(rejectedAt - waitingSince).TotalSeconds:F1}s after the wait began");
    }
}
