using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>Minor versions shadow before the canary; shadow-only and A/B runs end on an operator's decision.</summary>
public sealed class ShadowAndStrategyTests(AzuriteFixture azurite) : Scenario(azurite)
{
    [Fact(Timeout = 180_000)]
    public async Task A_minor_version_shadows_before_the_canary()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();

        var outcome = await RunAsync("1.1.0", Good);

        AssertOutcome("production", outcome);
        var moves = await TransitionsAsync("1.1.0");
        Assert.Contains(("evaluating", "shadow"), moves);
        Assert.Contains(("shadow", "canary"), moves);
        Assert.Equal(
            ["canary.json", "canary.png", "evaluation.json", "shadow.json", "shadow.png"],
            (await Host.Store.ListReportsAsync(Model, "1.1.0", Token)).Order(StringComparer.Ordinal));
        var shadow = await ReportAsync("1.1.0", "shadow");
        var canary = await ReportAsync("1.1.0", "canary");
        Assert.Equal(("shadow", "passed"), (shadow["stage"]!.GetValue<string>(), shadow["outcome"]!.GetValue<string>()));
        Assert.Equal(("canary", "promoted"), (canary["stage"]!.GetValue<string>(), canary["outcome"]!.GetValue<string>()));
        Assert.All(shadow["steps"]!.AsArray(), s => Assert.Equal("shadow", s!["kind"]!.GetValue<string>()));
        Assert.All(canary["steps"]!.AsArray(), s => Assert.Equal("canary", s!["kind"]!.GetValue<string>()));
        Assert.NotEmpty(shadow["steps"]!.AsArray());
        Assert.True(shadow["composite"]!["candidate"]!["P"]!.GetValue<double>() > 0);
        Assert.True(shadow["composite"]!["production"]!["P"]!.GetValue<double>() > 0);
    }

    [Fact(Timeout = 180_000)]
    public async Task Shadow_disagreement_rolls_back_before_any_routed_traffic()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.Behaviour["1.1.0"] = new Behaviour { FlipRate = 0.4 };

        var outcome = await RunAsync("1.1.0", Good);

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("shadow: candidate agrees with production on", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("below the 95% floor", outcome.Reason, StringComparison.Ordinal);
        var moves = await TransitionsAsync("1.1.0");
        Assert.Equal(("shadow", "rolled_back"), moves[^1]);
        Assert.DoesNotContain(("shadow", "canary"), moves);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, (string?)null), (routes.Production, routes.Shadow, routes.Candidate));
        Assert.Empty(await CandidateWeightsAsync("1.1.0"));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_shadow_only_run_reports_and_waits_for_an_operator()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("1.0.1", Good);
        var instance = await StartAsync("1.0.1", sha, Fast(("strategy", "shadow_only")));

        var waiting = await Host.WaitStatusAsync(instance, s => s.WaitingFor?.StartsWith("shadow_only run finished", StringComparison.Ordinal) == true);
        Assert.Equal((Stage.Shadow, LifecyclePhase.AwaitingDecision), (waiting.Stage, waiting.Phase));
        Assert.Equal("passed", (await ReportAsync("1.0.1", "shadow"))["outcome"]!.GetValue<string>());
        Assert.Empty(await CandidateWeightsAsync("1.0.1")); // a patch forced into shadow: no routed traffic
        await Host.SendAsync(instance, OperatorAction.Promote, "mirrors look right");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal(("production", "promoted by operator alice: mirrors look right"), (outcome.Outcome, outcome.Reason));
        Assert.Equal(("shadow", "production"), (await TransitionsAsync("1.0.1"))[^1]);
        Assert.Equal("1.0.1", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
    }

    [Fact(Timeout = 180_000)]
    public async Task An_ab_test_holds_its_split_then_waits_for_an_operator_decision()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("1.0.1", Good);
        var instance = await StartAsync("1.0.1", sha, Fast(("strategy", "ab_test"), ("ab_split_bp", 3000), ("ab_duration_s", 1.0)));

        var status = await Host.WaitStatusAsync(instance, s => s.WaitingFor?.Contains("A/B test finished", StringComparison.Ordinal) == true);
        Assert.Equal((3000, Stage.Canary), (status.WeightBp, status.Stage));
        Assert.Equal("passed", (await ReportAsync("1.0.1", "canary"))["outcome"]!.GetValue<string>());
        await Host.SendAsync(instance, OperatorAction.Promote, "B wins");
        var outcome = await Host.WaitDoneAsync(instance);

        Assert.Equal("promoted by operator alice: B wins", outcome.Reason);
        Assert.Equal("1.0.1", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal([0, 3000], await CandidateWeightsAsync("1.0.1"));
    }

    [Fact(Timeout = 180_000)]
    public async Task An_ab_test_nobody_decides_rolls_back_at_the_timeout()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();

        var outcome = await RunAsync("1.0.1", Good, Fast(("strategy", "ab_test"), ("ab_duration_s", 1.0), ("approval_timeout_s", 0.5)));

        Assert.Equal(("rolled_back", "A/B test finished; no operator decision within 0.5s"), (outcome.Outcome, outcome.Reason));
        Assert.Equal("1.0.0", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
    }
}
